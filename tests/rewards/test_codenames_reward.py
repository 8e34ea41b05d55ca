import pytest

from rewards import INVALID_REWARD, as_trl_reward, guess_reward, parse_guesses, score_guess_answer

BOARD = ["SHARK", "FISH", "WHALE", "MOON", "CAR", "PIANO"]
TARGETS = ["SHARK", "FISH", "WHALE"]
NON_TARGETS = ["MOON", "CAR"]  # PIANO is neither: a neutral word


def score(text, max_guesses=3, **kw):
    return score_guess_answer(text, BOARD, TARGETS, NON_TARGETS, max_guesses, **kw)


def test_all_targets_scores_one():
    assert score("Guesses: SHARK, FISH, WHALE").reward == pytest.approx(1.0)


def test_target_term_is_fraction_of_targets_found():
    # 2 of 3 targets, no non-target, no neutral: 2/3 - 0 - 0
    assert score("Guesses: SHARK, FISH").reward == pytest.approx(2 / 3)


def test_non_target_term():
    # 1/3 targets - 1/2 non-targets - 0 neutral
    assert score("Guesses: SHARK, MOON").reward == pytest.approx(1 / 3 - 1 / 2)


def test_neutral_term_is_fraction_of_guesses():
    # 1/3 - 0 - (1 neutral of 2 guesses)
    assert score("Guesses: SHARK, PIANO").reward == pytest.approx(1 / 3 - 1 / 2)


def test_every_term_at_once():
    # targets 1/3, non-targets 2/2, neutral 1/4 over G = {FISH, MOON, CAR, PIANO}
    result = score("Guesses: FISH, MOON, CAR, PIANO", max_guesses=4)
    assert result.reward == pytest.approx(1 / 3 - 1 - 1 / 4)
    assert result.valid and result.hits == ("FISH",)


def test_guess_reward_direct():
    assert guess_reward(["moon"], ["SHARK"], ["MOON"]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I think SHARK and FISH.", "no answer"),
        ("Guesses:", "empty"),
        ("Guesses: , ,", "empty"),
        ("Guesses: SHARK, DOLPHIN", "not on the board: DOLPHIN"),
        ("Guesses: SHARK, FISH, WHALE, MOON", "more than the maximum 3"),
    ],
)
def test_format_gate(text, reason):
    result = score(text)
    assert result.reward == INVALID_REWARD
    assert not result.valid
    assert reason in result.reason


def test_duplicates_and_case_count_once():
    # "shark, SHARK, Fish" is the set {SHARK, FISH}: two distinct guesses, under the limit of 2
    result = score("Guesses: shark, SHARK, Fish", max_guesses=2)
    assert result.valid
    assert result.guesses == ("SHARK", "FISH")
    assert result.reward == pytest.approx(2 / 3)


def test_last_answer_line_wins():
    assert score("Guesses: MOON\nOn reflection:\nGuesses: SHARK").reward == pytest.approx(1 / 3)


def test_lenient_parse_accepts_variants_strict_does_not():
    text = "**Guess:** shark; fish and whale."
    assert parse_guesses(text, lenient=True) == ["SHARK", "FISH", "WHALE"]
    assert parse_guesses(text, lenient=False) is None
    assert score(text, lenient=False).reward == INVALID_REWARD


def test_tagged_format():
    text = "ok [CODENAMES-GUESS-START] [Guesses]: [SHARK, whale] [CODENAMES-GUESS-END]"
    assert score(text, answer_format="tagged").reward == pytest.approx(2 / 3)
    assert score("Guesses: SHARK, WHALE", answer_format="tagged").reward == INVALID_REWARD


def test_multiword_board_entries():
    result = score_guess_answer(
        "Guesses: ice cream", ["ICE CREAM", "CAR"], ["ICE CREAM"], ["CAR"], 1
    )
    assert result.reward == pytest.approx(1.0)


def test_trl_wrapper_scores_each_row_with_its_own_columns():
    def reward(text, board, targets, non_targets, max_guesses):
        return score_guess_answer(text, board, targets, non_targets, max_guesses).reward

    func = as_trl_reward(reward)
    completions = [
        [{"role": "assistant", "content": "Guesses: SHARK"}],
        [{"role": "assistant", "content": "nope"}],
    ]
    out = func(
        completions,
        board=[BOARD, BOARD],
        targets=[["SHARK"], TARGETS],
        non_targets=[NON_TARGETS, NON_TARGETS],
        max_guesses=[1, 1],
        prompts=["p", "p"],
        trainer_state=None,
    )
    assert out == [pytest.approx(1.0), INVALID_REWARD]


def test_lenient_and_is_case_insensitive_but_strict_needs_commas():
    assert parse_guesses("Guesses: SHARK AND FISH", lenient=True) == ["SHARK", "FISH"]
    assert parse_guesses("Guesses: SHARK; FISH", lenient=False) == ["SHARK; FISH"]
    assert score("Guesses: SHARK; FISH", lenient=False).reason.startswith("guess not on the board")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00" * 50,
        "Guesses: " + "A, " * 5000,
        "Guesses:\n\n",
        "[CODENAMES-GUESS-START]",
        "🙂" * 100,
    ],
)
def test_untrusted_output_never_raises(text):
    for fmt in ("simple", "tagged"):
        for lenient in (True, False):
            result = score(text, answer_format=fmt, lenient=lenient)
            assert result.reward == INVALID_REWARD and result.reason


def test_trl_wrapper_ignores_a_column_named_like_the_text_and_none_content():
    def reward(text, target):
        return float(text.strip() == target)

    func = as_trl_reward(reward)
    completions = [
        [{"role": "assistant", "content": None}],
        [{"role": "assistant", "content": "x"}],
    ]
    assert func(completions, target=["", "x"], text=["a", "b"], trainer_state=None) == [1.0, 1.0]


def test_strict_simple_format_keeps_quotes_tagged_strips_them():
    assert parse_guesses('Guesses: "SHARK", FISH', lenient=False) == ['"SHARK"', "FISH"]
    tagged = "[CODENAMES-GUESS-START] [Guesses]: ['shark', 'fish'] [CODENAMES-GUESS-END]"
    assert parse_guesses(tagged, "tagged", lenient=False) == ["SHARK", "FISH"]

import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import envs
from envs.codenames.boards import make_board
from envs.codenames.guess import format_answer
from envs.codenames.words import similarity, wordlist


def test_same_seed_same_board_and_clue():
    a = envs.make("codenames-guess-v0").reset(seed=7)
    b = envs.make("codenames-guess-v0").reset(seed=7)
    assert a == b


def test_different_seeds_different_boards():
    env = envs.make("codenames-guess-v0")
    boards = {
        (tuple(env.reset(seed=s)[1]["board"]), env.reset(seed=s)[1]["clue"]) for s in range(20)
    }
    assert len(boards) == 20


def test_info_carries_hidden_state_not_shown_in_observation():
    env = envs.make("codenames-guess-v0", example=False)
    observation, info = env.reset(seed=3)
    assert set(info["targets"]) | set(info["non_targets"]) == set(info["board"])
    assert info["max_guesses"] == len(info["targets"])
    text = " ".join(m["content"] for m in observation)
    assert info["clue"] in text and all(w in text for w in info["board"])
    assert "target" not in text.lower()


@pytest.mark.parametrize("seed", range(30))
def test_board_sizes_and_close_targets(seed):
    env = envs.make("codenames-guess-v0", n_targets=[2, 6], n_non_targets=[2, 6])
    _, info = env.reset(seed=seed)
    assert 2 <= len(info["targets"]) <= 6 and 2 <= len(info["non_targets"]) <= 6
    assert 4 <= len(info["board"]) <= 12 and len(set(info["board"])) == len(info["board"])
    assert info["clue"] not in info["board"] and " " not in info["clue"]
    words, sim = wordlist(), similarity()
    c = words.index(info["clue"])
    nearest_non_target = max(sim[c, words.index(w)] for w in info["non_targets"])
    farthest_target = min(sim[c, words.index(w)] for w in info["targets"])
    assert farthest_target > nearest_non_target  # the clue separates the sets on close boards


def test_trick_non_targets_are_near_the_clue():
    words, sim = wordlist(), similarity()
    gaps = []
    for seed in range(20):
        board = make_board(np.random.default_rng(seed), n_non_targets=(3, 3), trick_non_targets=1)
        c = words.index(board.clue)
        gaps.append(max(sim[c, words.index(w)] for w in board.non_targets))
    plain = []
    for seed in range(20):
        board = make_board(np.random.default_rng(seed), n_non_targets=(3, 3))
        c = words.index(board.clue)
        plain.append(max(sim[c, words.index(w)] for w in board.non_targets))
    assert np.mean(gaps) > np.mean(plain) + 0.1


def test_neutral_words_fill_the_board():
    board = make_board(
        np.random.default_rng(0), n_targets=(2, 2), n_non_targets=(2, 2), n_neutral=(3, 3)
    )
    assert len(board.words) == 7 and len(board.neutral) == 3


def test_step_scores_the_answer_and_ends_the_episode():
    env = envs.make("codenames-guess-v0")
    _, info = env.reset(seed=11)
    transcript, reward, terminated, truncated, info = env.step(
        format_answer(info["targets"], "simple")
    )
    assert reward == pytest.approx(1.0) and terminated and not truncated
    assert info["valid"] and info["target_recall"] == 1.0
    assert transcript[-1]["role"] == "assistant"
    with pytest.raises(ResetNeeded):
        env.step("Guesses: X")


def test_invalid_answer_reports_reason():
    env = envs.make("codenames-guess-v0")
    env.reset(seed=1)
    _, reward, _, _, info = env.step("Guesses: NOT-A-WORD")
    assert reward == -1.0 and not info["valid"] and "not on the board" in info["reason"]


def test_tagged_format_prompt_and_answer():
    env = envs.make("codenames-guess-v0", answer_format="tagged")
    observation, info = env.reset(seed=2)
    assert "[CODENAMES-GUESS-START]" in observation[-1]["content"]
    _, reward, _, _, _ = env.step(format_answer(info["targets"], "tagged"))
    assert reward == pytest.approx(1.0)


def test_gymnasium_make_by_namespaced_id():
    import gymnasium as gym

    env = gym.make("assay/codenames-guess-v0", difficulty="far")
    _, info = env.reset(seed=0)
    assert info["agent"] == "guesser"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_targets": 3}, "n_targets must be [low, high]"),
        ({"n_targets": ["a", "b"]}, "n_targets must be [low, high]"),
        ({"n_non_targets": [4, 2]}, "n_non_targets must be [low, high]"),
        ({"difficulty": 5}, "difficulty must be one of close, mixed, far"),
        ({"difficulty": "medium"}, "Did you mean 'mixed'?"),
        ({"trick_non_targets": -1}, "trick_non_targets must be an int"),
        ({"trick_non_targets": 3, "n_non_targets": [2, 4]}, "trick_non_targets must be an int"),
        ({"max_guesses": 0}, "max_guesses must be a positive int"),
        ({"lenient": "yes"}, "lenient must be true or false"),
        ({"answer_format": "json"}, "answer_format must be one of simple, tagged"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    from assay.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("?", r"\?")):
        envs.make("codenames-guess-v0", **options)


def test_largest_boards_with_all_trick_non_targets_always_build():
    env = envs.make(
        "codenames-guess-v0",
        n_targets=[12, 12],
        n_non_targets=[12, 12],
        n_neutral=[12, 12],
        trick_non_targets=12,
        difficulty="far",
    )
    for seed in range(50):
        _, info = env.reset(seed=seed)
        assert len(info["board"]) == 36 == len(set(info["board"]))

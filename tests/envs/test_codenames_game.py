"""codenames-game-v0: the board game's rules, role-limited views, rewards and scripted agents."""

import pytest

import envs
from envs.codenames.agents import scripted_agent
from envs.codenames.game import SEATS, play_game


def _game(seed=0, **options):
    env = envs.make("codenames-game-v0", **options)
    _, info = env.reset(seed=seed)
    return env, info


def _words(env, colour):
    s = env.state
    return [w for w in s.words if s.key[w] == colour and w not in s.revealed]


def _legal_clue(env) -> str:
    from envs.codenames.agents import EmbeddingSpymaster

    clue, _ = EmbeddingSpymaster().choose(env.view())
    return clue


def test_the_board_has_9_8_7_1_and_the_starting_team_opens():
    env, info = _game()
    colours = list(env.state.key.values())
    start = env.state.starting
    other = "blue" if start == "red" else "red"
    assert len(env.state.words) == 25 == len(set(env.state.words))
    assert (colours.count(start), colours.count(other)) == (9, 8)
    assert (colours.count("neutral"), colours.count("assassin")) == (7, 1)
    assert info["agent"] == f"{start}/spymaster"


def test_a_wrong_colour_passes_the_turn_and_number_plus_one_guesses_are_allowed():
    env, info = _game(seed=1)
    team = env.state.team
    other = "blue" if team == "red" else "red"
    _, _, _, _, info = env.step(f"Clue: {_legal_clue(env)} 2")
    assert info["valid"] and info["agent"] == f"{team}/operative"
    for word in _words(env, team)[:3]:  # 2 + 1 own words: the turn goes on until the third
        _, _, terminated, _, info = env.step(f"Guess: {word}")
        assert not terminated
    assert info["agent"] == f"{other}/spymaster"  # three guesses used: the turn is over
    env.step(f"Clue: {_legal_clue(env)} 3")
    _, _, _, _, info = env.step(f"Guess: {_words(env, 'neutral')[0]}")
    assert info["agent"] == f"{team}/spymaster"  # a neutral word ends the turn at once


def test_revealed_words_may_be_clues_and_crlf_answers_parse():
    env, _ = _game(seed=9)
    word = next(w for w in env.state.words if " " not in w and env.state.key[w] == "neutral")
    _, _, _, _, info = env.step(f"Clue: {word} 1")
    assert not info["valid"]  # showing on the board: illegal
    env.state.revealed[word] = "neutral"  # once covered, it is an ordinary word
    _, _, _, _, info = env.step(f"Clue: {word} 1\r\n")
    assert info["valid"], info["reason"]
    own = _words(env, env.state.team)[0]
    _, _, _, _, info = env.step(f"Guess: {own}\r\n")
    assert info["valid"] and own in env.state.revealed


def test_pass_ends_the_turn_only_after_a_guess():
    env, _ = _game(seed=2)
    team = env.state.team
    env.step(f"Clue: {_legal_clue(env)} 2")
    _, _, _, _, info = env.step("Pass")
    assert not info["valid"] and info["agent"].endswith("spymaster") and env.state.team != team
    env.step(f"Clue: {_legal_clue(env)} 2")
    env.step(f"Guess: {_words(env, env.state.team)[0]}")
    _, _, _, _, info = env.step("Pass")
    assert info["valid"] and env.state.team == team


def test_the_assassin_loses_the_game_for_the_guessing_team():
    env, _ = _game(seed=3)
    team = env.state.team
    env.step(f"Clue: {_legal_clue(env)} 1")
    _, reward, terminated, _, info = env.step(f"Guess: {_words(env, 'assassin')[0]}")
    assert terminated and info["winner"] != team
    assert reward == -1.0  # the acting operative's team lost
    assert all(r == (1.0 if s.startswith(info["winner"]) else -1.0)
               for s, r in info["rewards"].items())  # fmt: skip
    assert "key" in info and "view" not in info  # over: the key may be shown


@pytest.mark.parametrize("mistake", [False, True])
def test_a_team_wins_when_its_last_word_is_revealed_even_by_the_other_team(mistake):
    env, _ = _game(seed=4)
    team = env.state.team
    other = "blue" if team == "red" else "red"
    winner = other if mistake else team
    for word in _words(env, winner)[:-1]:  # reveal all but one of the winner's words
        env.state.revealed[word] = winner
    env.step(f"Clue: {_legal_clue(env)} 1")
    _, _, terminated, _, info = env.step(f"Guess: {_words(env, winner)[0]}")
    assert terminated and info["winner"] == winner
    assert info["rewards"][f"{winner}/operative"] == 1.0


def test_illegal_clues_forfeit_the_turn_and_are_flagged():
    env, _ = _game(seed=5)
    team = env.state.team
    board_word = next(w for w in env.state.words if " " not in w)
    for bad in (f"Clue: {board_word} 2", "Clue: XQZVBT 2", "Clue: OCEAN 0", "just a word"):
        start_team = env.state.team
        _, _, _, _, info = env.step(bad)
        assert not info["valid"] and info["reason"]
        assert info["agent"].endswith("spymaster") and env.state.team != start_team
    assert env.state.team == team  # four forfeits later it is back to the first team


def test_the_turn_limit_truncates_with_a_draw():
    env, _ = _game(seed=6, max_turns=3)
    done = False
    steps = 0
    while not done:
        _, reward, terminated, truncated, info = env.step("Clue: XQZVBT 1")  # always forfeits
        done = terminated or truncated
        steps += 1
    assert truncated and not terminated and info["winner"] == "draw" and steps == 3
    assert all(r == 0.0 for r in info["rewards"].values())


def test_operatives_never_see_the_key():
    env, info = _game(seed=7)
    spymaster_text = "\n".join(m["content"] for m in env._observe())
    assert "[neutral]" in spymaster_text and "key" in info["view"]
    observation, _, _, _, info = env.step(f"Clue: {_legal_clue(env)} 2")
    assert info["agent"].endswith("operative")
    text = "\n".join(m["content"] for m in observation)
    assert "key" not in info["view"]
    for word in env.state.words:
        for colour in ("red", "blue", "neutral", "assassin"):
            assert f"{word} [{colour}]" not in text
    assert "assassin" not in str(info["view"]["revealed"])


def test_shaping_credits_both_agents_of_the_acting_team():
    env, _ = _game(seed=8, shaping={"own": 0.1, "neutral": -0.05})
    team = env.state.team
    env.step(f"Clue: {_legal_clue(env)} 2")
    _, reward, _, _, info = env.step(f"Guess: {_words(env, team)[0]}")
    assert reward == pytest.approx(0.1)
    assert info["rewards"][f"{team}/spymaster"] == pytest.approx(0.1)
    _, _, _, _, info = env.step(f"Guess: {_words(env, 'neutral')[0]}")
    assert info["rewards"][f"{team}/operative"] == pytest.approx(-0.05)
    with pytest.raises(Exception, match="shaping keys"):
        envs.make("codenames-game-v0", shaping={"owm": 1.0})


def test_embedding_agents_beat_random_ones_and_games_replay_by_seed():
    embedding = {s: scripted_agent("embedding", s.split("/")[1]) for s in SEATS}
    mixed = {s: scripted_agent("embedding" if s.startswith("red") else "random",
                               s.split("/")[1]) for s in SEATS}  # fmt: skip
    env = envs.make("codenames-game-v0")
    red_wins = sum(play_game(env, mixed, seed=s)[0] == "red" for s in range(20))
    assert red_wins >= 18
    first = play_game(env, embedding, seed=11)[2]
    again = play_game(env, embedding, seed=11)[2]
    assert [a for _, a, _ in first] == [a for _, a, _ in again]


def test_single_turn_scoring_refuses_the_multi_turn_game():
    """`assay train rl` and `assay eval` score one answer per episode: on the full game they
    would take the first clue's step reward for the game's, so they stop with a clear error."""
    from assay.errors import ConfigError

    with pytest.raises(ConfigError, match="goes on after the first answer"):
        envs.score_answers(envs.make("codenames-game-v0"), [(0, "Clue: ANIMAL 2")])
    ((reward, info),) = envs.score_answers(envs.make("codenames-guess-v0"), [(0, "Guess: X")])
    assert info["valid"] is False  # single-turn envs are scored as before

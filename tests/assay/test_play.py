"""assay play codenames: humans get retries for bad input, never a crash; --watch plays out."""

import envs
from assay.cli import main
from assay.cli.play import HumanAgent, make_agents, parse_seats, play


def test_a_human_operative_is_asked_again_after_bad_input_and_the_game_finishes():
    env = envs.make("codenames-game-v0")
    env.reset(seed=0)
    board = env.state.words
    answers = iter(["", "pass", "NOT-A-WORD", board[0], "pass"] + list(board) * 3)
    said = []
    human = HumanAgent(ask=lambda _prompt: next(answers), say=said.append, colour=False)
    agents = make_agents({"red/operative": "embedding", "blue/operative": "embedding"})
    agents["red/operative"] = agents["blue/operative"] = human  # a human guesses for both teams
    winner = play(env, agents, seed=0, say=said.append, colour=False)
    assert winner in ("red", "blue", "draw")
    text = "\n".join(said)
    assert "make at least one guess before passing; try again." in text
    assert "NOT-A-WORD is not on the board; try again." in text
    assert "team wins." in text or "Draw" in text


def test_a_human_spymaster_must_give_a_legal_clue():
    env = envs.make("codenames-game-v0")
    _, info = env.reset(seed=1)
    word = next(w for w in info["view"]["words"] if " " not in w)
    answers = iter(["ocean", f"{word} 2", "ocean 0", "xqzvbt 1", "ocean \u00b2", "ocean 2"])
    said = []
    human = HumanAgent(ask=lambda _prompt: next(answers), say=said.append, colour=False)
    move = human.act([], info["view"])
    assert move == "Clue: ocean 2"
    problems = [s for s in said if s.endswith("try again.")]
    assert len(problems) == 5 and "board word" in problems[1] and "1-9" in problems[2]


def test_seats_parse_by_seat_or_team():
    assert parse_seats(["blue=random", "red/operative=human"]) == {
        "blue/spymaster": "random",
        "blue/operative": "random",
        "red/operative": "human",
    }


def test_watch_plays_a_whole_game(capsys):
    assert main(["play", "codenames", "--watch", "--seed", "3", "--no-colour"]) == 0
    out = capsys.readouterr().out
    assert "red/spymaster: Clue:" in out or "blue/spymaster: Clue:" in out
    assert "team wins." in out or "Draw" in out
    assert main(["play", "codenames", "--watch", "--seat", "red=human"]) == 2

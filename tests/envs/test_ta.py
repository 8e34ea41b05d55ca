"""TextArena's games as ``ta/<id>``: the same seed and moves give TextArena's own observations
and close-out rewards, the checker passes, and a game trains for 2 multi-turn steps."""

import json
import random

import pytest

import envs
from assay.errors import EnvNotFound

textarena = pytest.importorskip("textarena")

GAMES = {
    "TicTacToe-v0": [f"[{i}]" for i in range(9)] + ["", "nonsense"],
    "ConnectFour-v0": [f"[col {i}]" for i in range(7)] + ["[col 9]"],
    "Nim-v0": [f"[{r} {n}]" for r in range(3) for n in range(1, 4)] + ["take all"],
}


@pytest.mark.parametrize("game", sorted(GAMES))
def test_a_game_matches_textarena_played_directly(game):
    env = envs.make(f"ta/{game}")
    assert not [r for r in envs.check_env(env) if not r.passed]
    for seed in range(4):
        rng = random.Random(seed)
        reference = textarena.make(game)
        reference.reset(num_players=env.num_players, seed=seed)
        observation, info = env.reset(seed=seed)
        for _ in range(60):
            player, text = reference.get_observation()
            assert info["agent"] == f"player_{player}" and observation[-1]["content"] == text
            action = rng.choice(GAMES[game])
            done, _ = reference.step(action)
            observation, reward, terminated, _, info = env.step(action)
            assert terminated == done
            if done:
                rewards, _ = reference.close()
                assert info["rewards"] == {f"player_{p}": float(r) for p, r in rewards.items()}
                assert reward == info["rewards"][f"player_{player}"]
                break
        else:
            raise AssertionError("the game did not end in 60 moves")


def test_a_refused_move_is_invalid_and_unknown_games_are_not_registered():
    env = envs.make("ta/TicTacToe-v0")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("not a move")
    assert not terminated and not info["valid"] and info["reason"]
    assert "ta/TicTacToe-v0" in envs.list_envs() and "ta/TicTacToe-v0-raw" not in envs.list_envs()
    with pytest.raises(EnvNotFound):
        envs.make("ta/NoSuchGame-v0")


def test_a_textarena_game_trains_two_multi_turn_steps(tmp_path):
    from assay.config import load_config
    from trainers.rl.config import RLConfig
    from trainers.rl.job import run_rl

    settings = {"model.name": "tiny-random-llama", "env.id": "ta/TicTacToe-v0",
                "episodes.multi_turn": True, "episodes.max_turns": 6, "train.steps": 2,
                "train.output_dir": str(tmp_path), "train.run_name": "ta", "algo.group_size": 2,
                "algo.prompts_per_step": 1, "sampling.max_new_tokens": 4, "eval.episodes": 1}  # fmt: skip
    run_rl(load_config(RLConfig, overrides=[f"{k}={v}" for k, v in settings.items()]),
           log=lambda *_: None)  # fmt: skip
    records = [json.loads(x) for x in (tmp_path / "ta" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]

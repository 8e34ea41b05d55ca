"""Codenames envs as TRL reward functions, over boards from the exporter."""

import json
import sys
from pathlib import Path

import pytest

import envs
from envs.codenames.clue import format_clue
from envs.codenames.export import export_boards, write_boards
from envs.trl import env_reward

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))


def test_export_is_balanced_per_tier_with_disjoint_splits(tmp_path):
    data = export_boards("guess", 40, validation_fraction=0.2)
    assert data["train"].num_rows == 32 and data["validation"].num_rows == 8
    train = data["train"].to_pandas()
    assert train.tier.value_counts().to_dict() == {t: 8 for t in train.tier.unique()}
    assert not set(train.seed) & set(data["validation"]["seed"])
    row = data["train"][5]  # the row rebuilds its episode exactly
    env = envs.make(row["env_id"], **json.loads(row["env_kwargs"]))
    prompt, info = env.reset(seed=row["seed"])
    assert prompt == row["prompt"] and info["clue"] == row["clue"]
    files = write_boards(data, tmp_path)
    assert sorted(p.name for p in files) == ["train.parquet", "validation.parquet"]


def test_env_reward_scores_rows_like_the_env():
    data = export_boards("clue", 8, validation_fraction=0.5)["train"]
    reward = env_reward("codenames-clue-v0")
    texts = [format_clue("ANIMAL", row["targets"][:1], "simple") for row in data] + ["nothing"]
    rows = list(data) + [data[0]]
    got = reward(
        [[{"role": "assistant", "content": t}] for t in texts],
        seed=[r["seed"] for r in rows],
        env_kwargs=[r["env_kwargs"] for r in rows],
        prompts=[r["prompt"] for r in rows],
    )
    for text, row, value in zip(texts, rows, got, strict=True):
        env = envs.make("codenames-clue-v0", **json.loads(row["env_kwargs"]))
        env.reset(seed=row["seed"])
        assert value == env.step(text)[1]
    assert got[-1] == -1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", ["guess", "clue"])
def test_trl_grpo_trainer_runs_a_step_on_exported_boards(tmp_path, task):
    from trl_codenames import train

    trainer = train(task, "tiny-random-llama", steps=1, output_dir=str(tmp_path))
    rewards = [r["reward"] for r in trainer.state.log_history if "reward" in r]
    assert len(rewards) == 1 and -1.0 <= rewards[0] <= 1.0

"""Export Codenames boards as a Hugging Face ``datasets`` dataset (``assay codenames export``).

Each row is one episode: ``prompt`` (the chat messages), ``seed`` and ``env_kwargs`` (JSON; what
rebuilds the episode: ``envs.make(env_id, **kwargs).reset(seed=seed)``), ``tier``, ``board``,
``targets``, ``non_targets`` and, for the guess task, ``clue`` and ``max_guesses``. Rows are
balanced across the tiers, and the train and validation splits use disjoint seeds. Use it with
TRL: ``GRPOTrainer(reward_funcs=[envs.trl.env_reward(env_id)], train_dataset=ds["train"])``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envs.codenames.tiers import TIERS
from envs.registry import make

TASKS = {"guess": "codenames-guess-v0", "clue": "codenames-clue-v0"}


def export_boards(
    task: str,
    n: int,
    validation_fraction: float = 0.1,
    tiers: tuple[str, ...] = TIERS,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
):
    """A ``DatasetDict`` with ``train`` and ``validation`` splits of ``n`` boards in all."""
    from datasets import Dataset, DatasetDict

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if n < 2 * len(tiers):
        raise ValueError(f"n must be at least {2 * len(tiers)} (two boards per tier), got {n}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    env_id = TASKS[task]
    n_val = max(len(tiers), round(n * validation_fraction))
    splits = {"train": n - n_val, "validation": n_val}
    out = {}
    offset = seed * 10_000_000
    for split, count in splits.items():
        rows = []
        for t, tier in enumerate(tiers):
            kwargs = {**(env_kwargs or {}), "tier": tier}
            env = make(env_id, **kwargs)
            per_tier = count // len(tiers) + (t < count % len(tiers))
            for i in range(per_tier):
                episode_seed = offset + (0 if split == "train" else 5_000_000) + t * 1_000_000 + i
                prompt, info = env.reset(seed=episode_seed)
                row = {
                    "prompt": prompt,
                    "seed": episode_seed,
                    "env_id": env_id,
                    "env_kwargs": json.dumps(kwargs, sort_keys=True),
                    "tier": tier,
                    "board": info["board"],
                    "targets": info["targets"],
                    "non_targets": info["non_targets"],
                }
                if task == "guess":
                    row.update(clue=info["clue"], max_guesses=info["max_guesses"])
                rows.append(row)
        out[split] = Dataset.from_list(rows)
    return DatasetDict(out)


def write_boards(dataset, out: Path) -> list[Path]:
    """Write each split as ``<out>/<split>.parquet``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for split, data in dataset.items():
        path = out / f"{split}.parquet"
        data.to_parquet(str(path))
        files.append(path)
    return files

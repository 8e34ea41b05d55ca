"""Single-turn assay envs as other trainers' datasets and reward functions.

- verl (``RLHFDataset``; its ``default_compute_score`` signature): rows of ``data_source``,
  ``prompt`` (chat messages), ``ability``, ``reward_model {style, ground_truth}``, ``extra_info``;
  :func:`compute_score` is the reward function (``custom_reward_function.path`` pointing at this
  module, ``.name: compute_score``).
- SkyRL: rows of ``data_source``, ``prompt``, ``env_class``, ``reward_spec {method,
  ground_truth}``, ``extra_info``.

``ground_truth`` is the JSON ``{"env_id", "env_kwargs", "seed"}`` that rebuilds the episode
(``envs.make(env_id, **env_kwargs).reset(seed=seed)``), so the score of an answer is exactly the
env's own reward for it, for any env, hidden state included.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from envs.registry import make

FORMATS = ("verl", "skyrl")
SAMPLED = ("sample", "response", "reward")
"""What a rollout adds to a row, under ``extra_info`` (verl's SFT trainer reads a response from
there: ``data.response_key=extra_info data.response_dict_keys=[response]``)."""


def episode_rows(
    env_id: str, env_kwargs: dict[str, Any], seeds: list[int], split: str
) -> list[dict[str, Any]]:
    """assay's own rows (``prompt``, ``seed``, ``env_id``, ``env_kwargs`` JSON, ``split``)."""
    env = make(env_id, **env_kwargs)
    rows = []
    for seed in seeds:
        prompt, _ = env.reset(seed=seed)
        rows.append({"prompt": prompt, "seed": seed, "env_id": env_id, "split": split,
                     "env_kwargs": json.dumps(env_kwargs, sort_keys=True)})  # fmt: skip
    return rows


def trainer_row(row: dict[str, Any], fmt: str, index: int) -> dict[str, Any]:
    """One assay row (``prompt``, ``seed``, ``env_id``, ``env_kwargs`` JSON) in ``fmt``'s schema."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    truth = json.dumps({"env_id": row["env_id"], "env_kwargs": json.loads(row["env_kwargs"]),
                        "seed": int(row["seed"])}, sort_keys=True)  # fmt: skip
    extra = {"index": index, "split": row.get("split", "train"), "seed": int(row["seed"]),
             "env_id": row["env_id"], "env_kwargs": row["env_kwargs"]}  # fmt: skip
    extra.update({k: row[k] for k in SAMPLED if k in row})  # a rollout's answer and its reward
    source = f"assay/{row['env_id']}"
    if fmt == "verl":
        return {"data_source": source, "prompt": row["prompt"],
                "ability": row["env_id"].split("-")[0],
                "reward_model": {"style": "rule", "ground_truth": truth}, "extra_info": extra}  # fmt: skip
    return {"data_source": source, "prompt": row["prompt"], "env_class": "assay",
            "reward_spec": {"method": "rule", "ground_truth": truth}, "extra_info": extra}  # fmt: skip


def rollout_rows(
    dataset, env_id: str, env_kwargs: dict[str, Any], split: str = "train"
) -> list[dict[str, Any]]:
    """The rows of an ``assay rollout`` dataset as assay rows with the sampled answer
    (``response``), its ``reward`` and ``sample``: one per episode of a single-turn env.
    A rollout with a multi-turn row raises ``ValueError`` (verl's and SkyRL's schemas are one
    prompt and one answer)."""
    kwargs = json.dumps(env_kwargs, sort_keys=True)
    turns = {int(t) for t in dataset["turns"]} if len(dataset) else set()
    agents = set(dataset["agent"]) if len(dataset) else set()
    if turns - {1} or len(agents) > 1:
        raise ValueError(
            f"{env_id}: verl's and SkyRL's datasets hold one prompt and one answer per row; this "
            f"rollout has episodes of up to {max(turns)} turns or {len(agents)} agents (use its "
            "`datasets` folder instead)"
        )
    return [{"prompt": r["prompt"], "seed": int(r["seed"]), "env_id": env_id, "split": split,
             "env_kwargs": kwargs, "sample": int(r["sample"]), "response": r["completion"],
             "reward": float(r["reward"])} for r in dataset]  # fmt: skip


def write_split(rows: list[dict[str, Any]], fmt: str, path: Path) -> Path:
    """``rows`` (assay rows) as ``fmt``'s schema in one parquet file."""
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list([trainer_row(r, fmt, i) for i, r in enumerate(rows)]).to_parquet(str(path))
    return path


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None
) -> float:
    """verl's reward function for an exported assay env: the env's reward for ``solution_str``
    on the episode ``ground_truth`` names. A malformed ``ground_truth`` raises ``ValueError``."""
    try:
        truth = json.loads(ground_truth)
        env_id, seed = str(truth["env_id"]), int(truth["seed"])
        kwargs = json.dumps(truth.get("env_kwargs") or {}, sort_keys=True)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(
            f"{data_source}: ground_truth is not an assay episode ({err}); it must be the JSON "
            '{"env_id", "env_kwargs", "seed"} that assay exports'
        ) from None
    reward, _ = _env(env_id, kwargs).score_many([(seed, solution_str)])[0]
    return float(reward)


@lru_cache(maxsize=16)
def _env(env_id: str, kwargs_json: str):
    return make(env_id, **json.loads(kwargs_json))

"""Standalone rollouts to a ``datasets`` dataset: what reward-model data and best-of-N use.

    assay rollout --model smollm2-135m-instruct --env math-gsm8k-v0 --n 1000 --samples 4 --out DIR

Episodes are played with :func:`trainers.episodes.run_episodes` (so multi-turn and multi-agent
envs work) for seeds ``seed_offset .. seed_offset + n - 1``, ``samples`` episodes per seed. Every
agent trajectory becomes one row:

``seed``, ``sample``, ``agent``, ``prompt`` (the first observation, chat messages),
``completion`` (the agent's answers, joined by blank lines), ``reward`` (the agent's episode
reward), ``turns``, ``truncated``, ``token_ids``, ``train_mask``, ``logprobs`` (the token-exact context) and
``info`` (the env's final ``info`` as JSON).

Rows are written in shards of ``shard_size`` seeds under ``DIR/shards/``, each saved whole (to a
temporary folder, then renamed), so an interrupted run resumes at the first missing shard; at the
end all shards are joined into ``DIR/dataset`` (``datasets.load_from_disk``). ``DIR/rollout.json``
records the settings; resuming with different ones is refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assay.runs import check_settings, env_identity
from trainers.episodes import Episode, run_episodes
from trainers.rollout import GenerationEngine, Sampling


def collect_rollouts(
    engine: GenerationEngine,
    make_env: Callable[[], Any],
    tokenizer,
    out_dir: Path,
    n: int,
    samples: int,
    sampling: Sampling,
    seed_offset: int = 0,
    shard_size: int = 64,
):
    """Play and save ``n * samples`` episodes; returns the joined ``datasets.Dataset``."""
    import datasets

    shards_dir = out_dir / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, n, samples, sampling, seed_offset, shard_size, make_env)
    starts = list(range(0, n, shard_size))
    for number, start in enumerate(tqdm(starts, desc="rollout", unit="shard")):
        final = shards_dir / f"{number:05d}"
        if final.exists():
            continue  # done in an earlier, interrupted run
        seeds = [seed_offset + s for s in range(start, min(start + shard_size, n))]
        rows = _play_shard(engine, make_env, tokenizer, seeds, samples, sampling, number)
        tmp = shards_dir / f".{number:05d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
        tmp.rename(final)
    parts = [datasets.load_from_disk(str(shards_dir / f"{k:05d}")) for k in range(len(starts))]
    dataset = datasets.concatenate_datasets(parts)
    dataset.save_to_disk(str(out_dir / "dataset"))
    return dataset


def _play_shard(engine, make_env, tokenizer, seeds, samples, sampling, number) -> list[dict]:
    all_seeds = [s for s in seeds for _ in range(samples)]
    if sampling.seed is not None:  # a shard's samples do not depend on earlier shards
        sampling = replace(sampling, seed=sampling.seed * 100_003 + number)
    episodes = run_episodes(engine, make_env, all_seeds, sampling, tokenizer)
    rows = []
    for k, episode in enumerate(episodes):
        rows += _rows(episode, sample=k % samples)
    return rows


def _rows(episode: Episode, sample: int) -> list[dict[str, Any]]:
    out = []
    for agent, t in episode.trajectories.items():
        if not t.turns:
            continue  # an agent that only received a reward, never acted
        first_prompt = t.messages[: t.policy_messages[0]]
        answers = [t.messages[i]["content"] for i in t.policy_messages]
        out.append(
            {
                "seed": episode.seed,
                "sample": sample,
                "agent": agent,
                "prompt": first_prompt,
                "completion": "\n\n".join(answers),
                "reward": t.reward,
                "turns": t.turns,
                "truncated": episode.truncated,
                "token_ids": t.token_ids,
                "train_mask": t.train_mask,
                "logprobs": t.logprobs,
                "info": json.dumps(episode.infos[-1], default=str),
            }
        )
    return out


def _check_manifest(out_dir: Path, n, samples, sampling, seed_offset, shard_size, make_env):
    """Shards are only reused by a run with the same settings; a different run must not silently
    mix with them."""
    manifest = {
        # 2: prompt and completion come from the policy's own turns (1 took an env prompt's
        # example assistant turns for the policy's); a folder of either is never mixed.
        "row_format": 2,
        "n": n,
        "samples": samples,
        "seed_offset": seed_offset,
        "shard_size": shard_size,
        "sampling": asdict(sampling),
        **env_identity(make_env()),
    }
    check_settings(out_dir / "rollout.json", manifest, "rollouts")

"""A step's metrics, over every rank: rewards of every completion sampled, validity, signal,
lengths, the env's own metrics, the update's statistics and timings."""

from __future__ import annotations

from typing import Any

import torch

from trainers.distributed import World, all_gather_objects
from trainers.rl.batch import trained_tokens
from trainers.rl.config import RLConfig
from trainers.rl.samples import Samples


def step_metrics(
    config: RLConfig,
    env,
    step: int,
    samples: Samples,
    stats: dict[str, float],
    *,
    world: World,
    elapsed: float,
    rollout_s: float,
) -> dict[str, Any]:
    """One row of ``metrics.jsonl``; ``stats`` are the update's, already reduced over ranks."""
    keys = getattr(env, "metric_keys", ())
    mine = {
        "sampled": samples.sampled_rewards,
        "valid": samples.sampled_valid,
        "aligned": samples.advantages is None,  # single-turn: one validity per sampled reward
        "batch": samples.rewards.flatten().tolist(),
        "infos": [{k: float(i.get(k, 0.0)) for k in keys} for i in samples.infos],
        "lengths": [trained_tokens(c) for c in samples.completions],
        "zero_std": (samples.rewards.amax(1) == samples.rewards.amin(1)).float().tolist(),
        "dropped": samples.dropped_groups,
        "rounds": samples.rounds,
        "extra": samples.extra_metrics,
    }
    parts = all_gather_objects(mine, world)
    sampled = torch.tensor([r for p in parts for r in p["sampled"]])
    valid = [v for p in parts for v in p["valid"]]
    lengths = [n for p in parts for n in p["lengths"]]
    infos = [i for p in parts for i in p["infos"]]
    zero_std = [z for p in parts for z in p["zero_std"]]
    metrics: dict[str, Any] = {
        "step": step,
        "reward_mean": sampled.mean().item(),
        "reward_std": sampled.std().item() if len(sampled) > 1 else 0.0,
        "valid_rate": sum(valid) / len(valid),
        **(_valid_mean(sampled.tolist(), valid) if all(p["aligned"] for p in parts) else {}),
        "zero_std_groups": sum(zero_std) / len(zero_std),
        "completion_len": sum(lengths) / len(lengths),
    }
    for key in keys:
        metrics[key] = sum(i[key] for i in infos) / len(infos)
    for key in samples.extra_metrics:
        metrics[key] = sum(p["extra"][key] for p in parts) / len(parts)
    if config.algo.setting("dynamic_sampling"):
        metrics["dropped_groups"] = sum(p["dropped"] for p in parts)
        metrics["sample_rounds"] = max(p["rounds"] for p in parts)
        batch = [r for p in parts for r in p["batch"]]
        metrics["batch_reward_mean"] = sum(batch) / len(batch)
    if samples.shaped is not None:
        metrics["overlong_penalty"] = (samples.shaped - samples.rewards).mean().item()
    metrics.update(stats)
    metrics.update(
        step_time_s=elapsed,
        rollout_time_s=rollout_s,
        update_time_s=elapsed - rollout_s,
        tokens_per_s=sum(lengths) / elapsed,
    )
    return metrics


def _valid_mean(rewards: list[float], valid: list[bool]) -> dict[str, float]:
    """``reward_valid_mean``: the mean reward of the valid answers (skill apart from format).
    Single-turn only: multi-turn validity is per move, its rewards per episode and agent."""
    kept = [r for r, v in zip(rewards, valid, strict=True) if v]
    return {"reward_valid_mean": sum(kept) / len(kept)} if kept else {}

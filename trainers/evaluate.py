"""Evaluate a policy on held-out episodes of a single-turn TextEnv (greedy decoding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from envs import score_answers
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine


@dataclass
class EvalResult:
    """Means over episodes plus one record per episode (seed, answer, reward, reason)."""

    metrics: dict[str, float]
    episodes: list[dict[str, Any]]


def evaluate_policy(
    engine: HFEngine,
    env,
    seeds: Sequence[int],
    max_new_tokens: int,
    batch_size: int = 32,
    desc: str = "eval",
    sampling: Sampling | None = None,
) -> EvalResult:
    """Play one greedy episode per seed and average reward, validity and the env's metrics.

    Format and skill apart: ``valid_rate`` is the share of answers the env could read,
    ``reward_valid_mean`` the mean reward among those (absent when none was valid), and
    ``chance_reward``, where the env defines one (``TextEnv.chance_reward``), the exact
    expected reward of a uniformly random valid answer on the same episodes.

    With ``sampling`` (n samples at a temperature) each episode is also answered n times:
    ``sampled_reward_mean`` averages every sample and ``sampled_max_reward`` the best of each
    episode's n (best-of-n with an oracle)."""
    metric_keys = getattr(env, "metric_keys", ())
    episodes: list[dict[str, Any]] = []
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    for start in tqdm(range(0, len(seeds), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(seeds[start : start + batch_size])
        prompts, chances = [], []
        for s in chunk:
            prompts.append(env.reset(seed=s)[0])
            chances.append(chance_of(env))
        completions = engine.generate(prompts, greedy)
        samples = engine.generate(prompts, sampling) if sampling else [[] for _ in chunk]
        pairs = zip(chunk, completions, strict=True)
        scored = score_answers(env, [(s, c.text) for s, (c,) in pairs])
        pairs = zip(chunk, samples, strict=True)
        sampled = score_answers(env, [(s, c.text) for s, group in pairs for c in group])
        k = sampling.n if sampling else 0
        for i, (seed, (completion,)) in enumerate(zip(chunk, completions, strict=True)):
            reward, info = scored[i]
            record = {
                "seed": seed,
                "answer": completion.text,
                "reward": float(reward),
                "valid": bool(info["valid"]),
                "reason": info["reason"],
            }
            if chances[i] is not None:
                record["chance_reward"] = chances[i]
            record.update({k: float(info[k]) for k in metric_keys if k in info})
            if k:
                record["sampled_rewards"] = [r for r, _ in sampled[i * k : (i + 1) * k]]
            episodes.append(record)
    n = max(len(episodes), 1)
    metrics = {
        "reward_mean": sum(e["reward"] for e in episodes) / n,
        "valid_rate": sum(e["valid"] for e in episodes) / n,
    }
    metrics.update(format_and_skill(episodes))
    for key in metric_keys:
        metrics[key] = sum(e.get(key, 0.0) for e in episodes) / n
    if sampling is not None and episodes:
        rewards = [e["sampled_rewards"] for e in episodes]
        metrics["sampled_reward_mean"] = sum(sum(r) / len(r) for r in rewards) / n
        metrics["sampled_max_reward"] = sum(max(r) for r in rewards) / n
    return EvalResult(metrics, episodes)


def chance_of(env) -> float | None:
    """The env's chance baseline on the episode it was just reset to, if it defines one."""
    hook = getattr(env.unwrapped, "chance_reward", None)
    value = hook() if hook is not None else None
    return None if value is None else float(value)


def format_and_skill(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """``reward_valid_mean`` (mean reward of the valid answers) and ``chance_reward`` (mean of
    the episodes' chance baselines, where every episode has one) of episode records holding
    ``reward``, ``valid`` and optionally ``chance_reward``."""
    out: dict[str, float] = {}
    valid = [e["reward"] for e in episodes if e["valid"]]
    if valid:
        out["reward_valid_mean"] = sum(valid) / len(valid)
    if episodes and all("chance_reward" in e for e in episodes):
        out["chance_reward"] = sum(e["chance_reward"] for e in episodes) / len(episodes)
    return out

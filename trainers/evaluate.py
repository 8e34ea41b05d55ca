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

    With ``sampling`` (n samples at a temperature) each episode is also answered n times:
    ``sampled_reward_mean`` averages every sample and ``sampled_max_reward`` the best of each
    episode's n (best-of-n with an oracle)."""
    metric_keys = getattr(env, "metric_keys", ())
    episodes: list[dict[str, Any]] = []
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    for start in tqdm(range(0, len(seeds), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(seeds[start : start + batch_size])
        prompts = [env.reset(seed=s)[0] for s in chunk]
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
            record.update({k: float(info[k]) for k in metric_keys if k in info})
            if k:
                record["sampled_rewards"] = [r for r, _ in sampled[i * k : (i + 1) * k]]
            episodes.append(record)
    n = max(len(episodes), 1)
    metrics = {
        "reward_mean": sum(e["reward"] for e in episodes) / n,
        "valid_rate": sum(e["valid"] for e in episodes) / n,
    }
    for key in metric_keys:
        metrics[key] = sum(e.get(key, 0.0) for e in episodes) / n
    if sampling is not None and episodes:
        rewards = [e["sampled_rewards"] for e in episodes]
        metrics["sampled_reward_mean"] = sum(sum(r) / len(r) for r in rewards) / n
        metrics["sampled_max_reward"] = sum(max(r) for r in rewards) / n
    return EvalResult(metrics, episodes)

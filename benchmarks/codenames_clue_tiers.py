"""Clue-giving per curriculum tier: a base model vs a trained checkpoint on held-out boards.

    python benchmarks/codenames_clue_tiers.py --trained runs/<run>/checkpoints/step-000050 \\
        [--base smollm2-135m-instruct] [--boards 50]

Each model answers the same ``--boards`` held-out boards of every tier greedily (seeds from 10**9,
never used in training); the embedding judge guesses. Prints reward, validity and target recall
per tier and ends with ``RESULT <tier>_base=... <tier>_trained=...``.
"""

from __future__ import annotations

import argparse

import envs
from assay.models import load_causal_lm
from envs.codenames.tiers import TIERS
from trainers.engines.hf import HFEngine
from trainers.evaluate import evaluate_policy


def per_tier(model_name: str, boards: int, env_kwargs: dict) -> dict[str, dict[str, float]]:
    model, tokenizer = load_causal_lm(model_name)
    engine = HFEngine(model, tokenizer)
    out = {}
    for tier in TIERS:
        env = envs.make("codenames-clue-v0", **{**env_kwargs, "tier": tier})
        seeds = [10**9 + i for i in range(boards)]
        out[tier] = evaluate_policy(engine, env, seeds, 24, batch_size=25, desc=tier).metrics
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trained", required=True)
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--boards", type=int, default=50)
    args = parser.parse_args()
    kwargs = {"n_targets": [2, 3], "n_non_targets": [2, 3]}
    base = per_tier(args.base, args.boards, kwargs)
    trained = per_tier(args.trained, args.boards, kwargs)
    print(f"{'tier':10}{'reward base':>13}{'trained':>9}{'valid base':>12}{'trained':>9}"
          f"{'recall base':>13}{'trained':>9}")  # fmt: skip
    fields = []
    for tier in TIERS:
        b, t = base[tier], trained[tier]
        print(f"{tier:10}{b['reward_mean']:>+13.3f}{t['reward_mean']:>+9.3f}"
              f"{b['valid_rate']:>12.0%}{t['valid_rate']:>9.0%}"
              f"{b['target_recall']:>13.3f}{t['target_recall']:>9.3f}")  # fmt: skip
        fields += [f"{tier}_base={b['reward_mean']:.3f}", f"{tier}_trained={t['reward_mean']:.3f}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()

"""Fixed-seed RL runs, one per algorithm and mode, whose step metrics must not change when the
learner is reorganised (a refactor keeps every number to 1e-6).

The fast form (the tiny model on the length env, whose rewards vary) runs in
``test_rl_golden.py`` against ``data/rl_golden.json``. The full form runs SmolLM2 on
Codenames and the multi-turn game as a script:

    python tests/trainers/rl_golden.py --model smollm2-135m-instruct --out before.json
    python tests/trainers/rl_golden.py --model smollm2-135m-instruct --compare before.json

Timing and memory fields are facts about the machine and are left out.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

ALGORITHMS = ("grpo", "dapo", "dr_grpo", "rloo", "reinforce_pp", "gspo", "ppo")

# name -> overrides on top of the base; every algorithm, then the modes that change the step.
SCENARIOS: dict[str, dict[str, object]] = {
    **{name: {"algo.name": name} for name in ALGORITHMS},
    "grpo_kl_loss": {"algo.kl_coef": 0.1},
    "rloo_kl_reward": {
        "algo.name": "rloo",
        "algo.kl_coef": 0.1,
        "algo.kl_in": "reward",
        "algo.kl_estimator": "k1",
    },
    "ppo_epochs_minibatches": {"algo.name": "ppo", "algo.epochs": 2, "algo.mini_batches": 2},
    "grpo_off_policy": {"engines.off_policy": True},
    "grpo_entropy_grad_accum": {"algo.entropy_coef": 0.01, "algo.grad_accum": 2},
    "multi_turn": {"episodes.multi_turn": True},
}

FAST = {  # the tiny model on the length env
    "model.name": "tiny-random-llama",
    "env.id": "test-length-v0",
    "sampling.temperature": 1.0,
    "sampling.max_new_tokens": 8,
    "algo.group_size": 4,
    "algo.prompts_per_step": 2,
    "optim.lr": 1e-3,
    "eval.episodes": 0,
}

FULL = {  # SmolLM2 on the demo's Codenames boards, where its answers get varied rewards
    "model.name": "smollm2-135m-instruct",
    "env.id": "codenames-guess-v0",
    "env.kwargs": {
        "answer_format": "simple",
        "n_targets": [2, 3],
        "n_non_targets": [2, 3],
        "difficulty": "close",
    },
    "sampling.temperature": 1.0,
    "sampling.max_new_tokens": 32,
    "algo.group_size": 4,
    "algo.prompts_per_step": 2,
    "optim.lr": 1.5e-5,
    "eval.episodes": 0,
}
FULL_MULTI_TURN = {  # the full game (the tiny model: SmolLM2 takes minutes a step)
    "model.name": "tiny-random-llama",
    "env.id": "codenames-game-v0",
    "env.kwargs": {},
    "episodes.seats": {"blue/*": "embedding"},
    "episodes.max_turns": 8,
}


def _measured(key: str) -> bool:
    return key.endswith(("_s", "_per_s", "_per_sec")) or key.startswith("mem/")


def register_length_env() -> None:
    import importlib.util

    import envs

    # The tests' conftest by path: putting tests/ on sys.path would shadow the envs package.
    spec = importlib.util.spec_from_file_location(
        "assay_tests_conftest", HERE.parent / "conftest.py"
    )
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    LengthEnv = conftest.LengthEnv
    if "test-length-v0" not in envs.list_envs():
        envs.register("test-length-v0", LengthEnv)


def run(overrides: dict[str, object], steps: int) -> list[dict[str, float]]:
    """Step metrics (less timings) and a checksum of the trained weights after each step."""
    import envs
    from assay.config import load_config
    from assay.models import load_causal_lm
    from trainers.rl.config import RLConfig
    from trainers.rl.learner import RLLearner

    register_length_env()
    pairs = [f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in overrides.items()]
    config = load_config(RLConfig, overrides=pairs)
    torch.manual_seed(config.train.seed)
    model, tokenizer = load_causal_lm(config.model.name)
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    env = envs.make(config.env.id, **config.env.kwargs)
    out = []
    try:
        for step in range(1, steps + 1):
            metrics = learner.step(env, step)
            row = {k: float(v) for k, v in metrics.items() if not _measured(k)}
            with torch.no_grad():
                row["weights_checksum"] = float(
                    sum((p.double() * (i + 1)).sum() for i, p in enumerate(model_params(learner)))
                )
            out.append(row)
    finally:
        learner.close()
    return out


def model_params(learner) -> list[torch.Tensor]:
    return [p for p in learner.model.parameters() if p.requires_grad]


def record(base: dict[str, object], steps: int, names=None, multi_turn=None) -> dict:
    results = {}
    for name, extra in SCENARIOS.items():
        if names and name not in names:
            continue
        overrides = {**base, **extra}
        if name == "multi_turn" and multi_turn:
            overrides.update(multi_turn)
        results[name] = run(overrides, steps)
    return results


def differences(got: dict, want: dict, tol: float = 1e-6) -> list[str]:
    """Every metric that differs by more than ``tol`` (relative to its size, at least 1)."""
    out = []
    for name in want:
        if name not in got:
            out.append(f"{name}: not run")
            continue
        for step, (g, w) in enumerate(zip(got[name], want[name], strict=True), start=1):
            if g.keys() != w.keys():
                out.append(f"{name} step {step}: keys {sorted(g.keys() ^ w.keys())}")
            for key in w.keys() & g.keys():
                a, b = g[key], w[key]
                same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1, abs(b))
                if not same:
                    out.append(f"{name} step {step} {key}: {a!r} != {b!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-random-llama")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    if args.model == "tiny-random-llama":
        base, multi = dict(FAST), None
    else:
        base, multi = {**FULL, "model.name": args.model}, FULL_MULTI_TURN
    results = record(base, args.steps, args.only, multi)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    if args.compare:
        diffs = differences(results, json.loads(args.compare.read_text()))
        print("\n".join(diffs) or f"all {len(results)} runs match to 1e-6")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

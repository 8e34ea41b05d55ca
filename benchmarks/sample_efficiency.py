"""Sample efficiency: held-out reward after a fixed budget of RL steps, per algorithm and seed.

    python benchmarks/sample_efficiency.py [--algos grpo,dapo,dr_grpo] [--seeds 0,1,2]
                                           [--steps 30] [--episodes 50] [--out runs/sample-efficiency]

Each run is `configs/codenames_guess.yaml` (SmolLM2-135M-Instruct on codenames-guess-v0, 2
prompts x 8 completions per step, lr 1.5e-5, temperature 0.7) with ``algo.name`` and
``train.seed`` changed and no time limit; after ``--steps`` steps the policy is evaluated
greedily on the same ``--episodes`` held-out boards. The base model is evaluated once on those
boards. Prints a table (mean and spread over seeds), writes ``<out>/sample_efficiency.png``
(training reward per step, mean over seeds) and ``<out>/results.json``, and ends with
``RESULT base=... <algo>_mean=... <algo>_std=...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from assay.runs import MetricsLog
from trainers.engines.hf import HFEngine
from trainers.evaluate import evaluate_policy
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl

CONFIG = Path(__file__).parents[1] / "configs" / "codenames_guess.yaml"


def run_one(algo: str, seed: int, steps: int, episodes: int, out: Path) -> dict:
    name = f"{algo}-seed{seed}"
    overrides = [
        f"algo.name={algo}",
        f"train.seed={seed}",
        f"train.steps={steps}",
        "train.max_minutes=null",
        f"train.checkpoint_every={steps}",
        f"train.output_dir={out}",
        f"train.run_name={name}",
        f"eval.episodes={episodes}",
        "eval.compare_base=false",
    ]
    config = load_config(RLConfig, CONFIG, overrides)
    summary = run_rl(config, log=lambda *_: None)
    records = MetricsLog(out / name / "metrics.jsonl").read()
    sampled = sum(r.get("sample_rounds", 1) for r in records)
    return {
        "algo": algo,
        "seed": seed,
        "eval_reward": summary["eval_trained"]["reward_mean"],
        "eval_valid": summary["eval_trained"]["valid_rate"],
        "train_reward": [r["reward_mean"] for r in records],
        "prompt_rounds": sampled,
    }


def base_reward(episodes: int) -> float:
    config = load_config(RLConfig, CONFIG)
    model, tokenizer = load_causal_lm(config.model.name)
    env = envs.make(config.env.id, **config.env.kwargs)
    seeds = [config.eval.seed_offset + i for i in range(episodes)]
    result = evaluate_policy(HFEngine(model, tokenizer), env, seeds, config.sampling.max_new_tokens)
    return result.metrics["reward_mean"]


def plot(results: list[dict], algos: list[str], path: Path) -> None:
    from assay.runs import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for algo in algos:
        curves = [r["train_reward"] for r in results if r["algo"] == algo]
        length = min(len(c) for c in curves)
        mean = [statistics.mean(c[i] for c in curves) for i in range(length)]
        ax.plot(range(1, length + 1), mean, label=f"{algo} (mean of {len(curves)} seeds)")
    ax.set_xlabel("step")
    ax.set_ylabel("training reward (mean over the step's samples)")
    ax.set_title("codenames-guess-v0, SmolLM2-135M, CPU")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algos", default="grpo,dapo,dr_grpo")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/sample-efficiency"))
    args = parser.parse_args()
    algos = args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    base = base_reward(args.episodes)
    results = []
    for algo in algos:
        for seed in seeds:
            result = run_one(algo, seed, args.steps, args.episodes, args.out)
            results.append(result)
            print(f"{algo:8s} seed {seed}: held-out reward {result['eval_reward']:+.3f}, "
                  f"valid {result['eval_valid']:.0%}, prompt rounds {result['prompt_rounds']}",
                  flush=True)  # fmt: skip
    (args.out / "results.json").write_text(json.dumps({"base": base, "runs": results}, indent=2))
    plot(results, algos, args.out / "sample_efficiency.png")

    print(f"\nHeld-out reward after {args.steps} steps ({args.episodes} boards, greedy); "
          f"base model {base:+.3f}")  # fmt: skip
    print(f"{'algo':10}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}{'valid':>8}")
    fields = [f"base={base:.3f}"]
    for algo in algos:
        rewards = [r["eval_reward"] for r in results if r["algo"] == algo]
        valid = statistics.mean(r["eval_valid"] for r in results if r["algo"] == algo)
        std = statistics.stdev(rewards) if len(rewards) > 1 else 0.0
        mean = statistics.mean(rewards)
        print(f"{algo:10}{mean:>+8.3f}{std:>8.3f}{min(rewards):>+8.3f}{max(rewards):>+8.3f}"
              f"{valid:>8.0%}")  # fmt: skip
        fields += [f"{algo}_mean={mean:.3f}", f"{algo}_std={std:.3f}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()

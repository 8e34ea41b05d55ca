"""The warm-start study of docs/sft.md: does RL teach skill beyond what a warm start teaches?

For each seed, on ``codenames-guess-v0`` with the main job's boards (``configs/
codenames_guess.yaml``) and SmolLM2-135M-Instruct, it runs the ladder

    base -> SFT (the env teaches: the targets) -> RFT on the SFT model (2 rounds)
         -> RL from the SFT model and RL from the RFT model

and evaluates each rung greedily on the same held-out boards (seeds 10**9 + i), reporting the
reward, the valid rate, the reward among valid answers and the chance baseline (a uniformly
random valid answer, exact). Every rung is an ordinary assay run under ``--out`` (resumable:
a finished rung is read back, not run again), so any of them can be inspected or resumed.

    python scripts/warm_start_study.py --seeds 0 1 2 --boards 200 --out runs/warm-start-study

``--task gsm8k`` runs the same ladder on ``math-gsm8k-v0`` (zero-shot prompts; the env teaches
the dataset's worked solutions; RFT keeps correct solutions; held-out GSM8K test problems, 256
new tokens). A GRPO step on GSM8K takes minutes on this CPU, so ``--rl-minutes 0`` (skip the RL
rungs) is the CPU setting there.

Writes ``results.json``, ``results.md`` (the table) and ``warm_start.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from assay.config import load_config
from assay.runs import pyplot, write_json
from trainers.rft import RFTConfig, run_rft
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl
from trainers.sft_job import SFTConfig, run_sft

RUNGS = ("base", "sft", "rft", "sft+rl", "rft+rl")
KEYS = ("reward_mean", "valid_rate", "reward_valid_mean", "chance_reward")


def _env_overrides(prefix: str, kwargs: dict) -> list[str]:
    return [f"{prefix}.{k}={json.dumps(v)}" for k, v in kwargs.items()]


def _rung(out: Path, name: str, run) -> dict:
    """Run a rung once; a finished rung's summary is read back."""
    summary = out / name / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text())
    started = time.time()
    result = run()
    print(f"[study] {name}: {time.time() - started:.0f} s", flush=True)
    return result


@dataclass(frozen=True)
class Task:
    """One ladder: its configs, the env options every rung trains on, and its evaluation."""

    title: str
    sft: str
    rft: str
    rl: str
    env_kwargs: dict
    eval_kwargs: dict  # the held-out episodes' env options, where they differ
    max_new_tokens: int


def _task(name: str) -> Task:
    if name == "codenames":
        kwargs = dict(load_config(RLConfig, "configs/codenames_guess.yaml").env.kwargs)
        return Task("codenames-guess-v0", "configs/sft_codenames_teacher.yaml",
                    "configs/rft_codenames.yaml", "configs/codenames_guess.yaml", kwargs, kwargs,
                    32)  # fmt: skip
    train, test = {"split": "train", "few_shot": 0}, {"split": "test", "few_shot": 0}
    return Task("math-gsm8k-v0", "configs/sft_gsm8k_teacher.yaml", "configs/rft_gsm8k.yaml",
                "configs/math_gsm8k.yaml", train, test, 256)  # fmt: skip


def study(
    seeds: list[int],
    boards: int,
    out: Path,
    rl_minutes: float,
    model: str,
    task: str = "codenames",
    rft: tuple[str, ...] = (),
) -> dict:
    """``rft``: overrides of the RFT rung's config (``rft.rounds=1``, ...)."""
    spec = _task(task)
    env_kwargs = spec.env_kwargs
    evaluation = [f"eval.episodes={boards}", f"eval.max_new_tokens={spec.max_new_tokens}",
                  "eval.batch_size=50", *_env_overrides("eval.env_kwargs", spec.eval_kwargs)]  # fmt: skip
    results: dict[str, dict[str, dict]] = {rung: {} for rung in RUNGS}
    for seed in seeds:
        sft_name, rft_name = f"sft-seed{seed}", f"rft-seed{seed}"
        sft = load_config(SFTConfig, spec.sft, [
            f"model.name={model}", f"train.seed={seed}", f"data.seed_offset={seed * 100_000}",
            f"train.output_dir={out}", f"train.run_name={sft_name}",
            *_env_overrides("data.env_kwargs", env_kwargs), *evaluation])  # fmt: skip
        first = out / f"sft-seed{seeds[0]}" / "eval_base.json"
        if seed != seeds[0] and first.exists() and not (out / sft_name).exists():
            # Greedy decoding of the same model on the same boards: evaluated once, shared.
            (out / sft_name).mkdir(parents=True)
            shutil.copy(first, out / sft_name / "eval_base.json")
        done = _rung(
            out, sft_name, lambda sft=sft, d=out / sft_name: run_sft(sft, d if d.exists() else None)
        )
        results["base"][seed] = done["eval_base"]
        results["sft"][seed] = done["eval_trained"]
        rft = load_config(RFTConfig, spec.rft, [
            f"model.name={out / sft_name}", f"train.seed={seed}", f"rft.seed_offset={seed * 100_000 + 50_000}",
            f"train.output_dir={out}", f"train.run_name={rft_name}",
            "rft.eval_base=false", "rft.eval_each_round=false", "rft.batch_size=32",
            *_env_overrides("env.kwargs", env_kwargs), *evaluation, *rft])  # fmt: skip
        done = _rung(
            out, rft_name, lambda rft=rft, d=out / rft_name: run_rft(rft, d if d.exists() else None)
        )
        results["rft"][seed] = done["rounds"][-1]["eval"]
        for start, rung in ((sft_name, "sft+rl"), (rft_name, "rft+rl")) if rl_minutes else ():
            name = f"{rung.replace('+', '-')}-seed{seed}"
            rl = load_config(RLConfig, spec.rl, [
                f"model.name={out / start}", f"train.seed={seed}", f"train.output_dir={out}",
                f"train.run_name={name}", f"train.max_minutes={rl_minutes}",
                *_env_overrides("env.kwargs", env_kwargs), "eval.compare_base=false",
                *[o for o in evaluation if not o.startswith("eval.max_new_tokens")]])  # fmt: skip
            done = _rung(
                out, name, lambda rl=rl, d=out / name: run_rl(rl, d if d.exists() else None)
            )
            results[rung][seed] = done["eval_trained"]
    write_json(out / "results.json", results)
    table = format_table(results, seeds, boards, spec.title)
    (out / "results.md").write_text(table + "\n")
    print(table)
    plot(results, out / "warm_start.png", spec.title)
    return results


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:+.3f}"
    return f"{statistics.mean(values):+.3f} ± {statistics.stdev(values):.3f}"


def format_table(results: dict, seeds: list[int], boards: int, title: str) -> str:
    head = (f"| {title} ({len(seeds)} seeds, {boards} held-out episodes) | reward | valid rate "
            "| reward among valid | chance (random valid) |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|"]
    for rung in RUNGS:
        per_seed = [results[rung][s] for s in seeds if results[rung].get(s)]
        if not per_seed:
            continue
        cells = []
        for key in KEYS:
            values = [m[key] for m in per_seed if key in m]
            cells.append(
                f"{statistics.mean(values):.1%}" if key == "valid_rate" and values
                else _mean_sd(values)
            )  # fmt: skip
        lines.append(f"| {rung} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for offset, (key, label) in enumerate((("reward_mean", "reward"),
                                           ("reward_valid_mean", "reward among valid"),
                                           ("valid_rate", "valid rate"))):  # fmt: skip
        xs, ys, errs = [], [], []
        for i, rung in enumerate(RUNGS):
            values = [m[key] for m in results[rung].values() if m and key in m]
            if values:
                xs.append(i + (offset - 1) * 0.25)
                ys.append(statistics.mean(values))
                errs.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        ax.bar(xs, ys, width=0.25, yerr=errs, label=label, capsize=3)
    chance = [m["chance_reward"] for r in results.values() for m in r.values()
              if m and "chance_reward" in m]  # fmt: skip
    if chance:
        ax.axhline(statistics.mean(chance), color="gray", linestyle="--",
                   label="chance (random valid answer)")  # fmt: skip
    ax.set_xticks(range(len(RUNGS)), RUNGS)
    ax.set_title(f"{title}, SmolLM2-135M: warm start, then RL")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("codenames", "gsm8k"), default="codenames")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--boards", type=int, default=200)
    parser.add_argument("--rl-minutes", type=float, default=5.0, help="0: no RL rungs")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=Path("runs/warm-start-study"))
    parser.add_argument(
        "--rft", nargs="*", default=[], metavar="key=value", help="RFT config overrides"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    study(args.seeds, args.boards, args.out, args.rl_minutes, args.model, args.task,
          tuple(args.rft))  # fmt: skip


if __name__ == "__main__":
    main()

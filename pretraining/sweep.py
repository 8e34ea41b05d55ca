"""``assay pretrain sweep``: train a grid of model sizes x data budgets and fit scaling laws.

Each cell is an ordinary pretraining run under ``OUT/<size>-D<tokens>/`` that reads ``tokens``
training tokens once (``data.max_train_tokens`` = the budget, so no window repeats), with the
warmup shortened to a tenth of the run where the config's is longer. Cells that already have a
``summary.json`` are read, not retrained, so an interrupted sweep resumes. The fits
(:mod:`pretraining.scaling`) use the non-embedding parameter count N, the tokens D and C = 6ND.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from assay.runs import write_json
from pretraining.config import PretrainConfig
from pretraining.scaling import plot_scaling, scaling_fits
from pretraining.trainer import run_pretrain


def cell_overrides(base: PretrainConfig, size: str, tokens: int, out: Path) -> list[str]:
    """The overrides that turn the base config into the (size, tokens) cell."""
    per_step = base.train.batch_size * base.model.seq_len
    steps = max(1, math.ceil(tokens / per_step))
    warmup = max(1, min(base.optim.warmup_steps, steps // 10))
    return [
        f"model.size={size}",
        f"data.max_train_tokens={steps * per_step}",
        f"train.max_steps={steps}",
        f"optim.warmup_steps={warmup}",
        f"train.eval_every={steps}",
        f"train.checkpoint_every={steps}",
        f"train.output_dir={out}",
        f"train.run_name={size}-D{tokens}",
    ]


def run_sweep(
    load: Callable[[list[str]], PretrainConfig], sizes: list[str], tokens: list[int], out: Path
) -> str:
    """Train (or read) every cell, fit L(N), L(D), L(C), plot, and return a printable table."""
    base = load([])
    records = []
    for size in sizes:
        for budget in tokens:
            config = load(cell_overrides(base, size, budget, out))
            run_dir = out / f"{size}-D{budget}"
            if not (run_dir / "summary.json").exists():
                run_pretrain(config)
            summary = json.loads((run_dir / "summary.json").read_text())
            records.append(
                {
                    "size": size,
                    "n_params": summary["parameters"]["non_embedding"],
                    "tokens": summary["train_tokens_seen"],
                    "loss": summary["eval/loss"],
                }
            )
    fits = scaling_fits(records)
    plot_scaling(records, fits, out / "scaling.png")
    write_json(
        out / "sweep.json",
        {
            "records": records,
            "fits": {name: str(fit) for name, fit in fits.items()},
            "skipped": dict(fits.skipped),
        },
    )
    lines = [f"{'size':12}{'N (non-emb)':>13}{'D tokens':>10}{'eval loss':>11}"]
    lines += [
        f"{r['size']:12}{r['n_params']:>13,}{r['tokens']:>10,}{r['loss']:>11.4f}" for r in records
    ]
    lines += [str(fit) for fit in fits.values()]
    lines += [f"L({name}) not fitted: {why}" for name, why in fits.skipped.items()]
    lines.append(f"plot: {out / 'scaling.png'}")
    return "\n".join(lines)

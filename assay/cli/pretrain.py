"""``assay pretrain ...``: train, sweep model x data sizes, prune, and evaluate zero-shot.

assay pretrain --config configs/pretrain_tiny.yaml [method=relora max_steps=200 ...] [--resume] [--nproc N]
assay pretrain sweep --config configs/pretrain_tiny.yaml --sizes llama-1m,llama-3m --tokens 1e5,2e5 --out DIR
assay pretrain prune --config configs/pretrain_tiny.yaml --rounds 3 --fraction 0.2 --out DIR
assay pretrain zeroshot --models RUN_DIR/final,smollm2-135m-instruct [--limit 200] --out DIR
assay pretrain seen --run RUN_DIR "a phrase" ["another phrase" ...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from assay.errors import AssayError

ACTIONS = ("sweep", "prune", "zeroshot", "seen")


def route(argv: list[str]) -> list[str]:
    """``pretrain sweep ...`` -> ``pretrain-sweep ...``: the train command takes free-form
    ``key=value`` overrides, so its actions are separate parsers."""
    if len(argv) >= 2 and argv[0] == "pretrain" and argv[1] in ACTIONS:
        return [f"pretrain-{argv[1]}", *argv[2:]]
    return argv


def _load(args: argparse.Namespace, extra: list[str] = ()):
    from assay.config import load_config
    from pretraining.config import PretrainConfig, expand_short

    return load_config(PretrainConfig, args.config, expand_short([*args.overrides, *extra]))


def _pretrain(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise AssayError(f"--nproc must be >= 1, got {args.nproc}.")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from assay.distributed import launch_ranks

        command = ["pretrain"] + (["--config", str(args.config)] if args.config else [])
        command += ["--resume", args.resume] if args.resume is not None else []
        return launch_ranks(args.nproc, [*command, *args.overrides])
    from assay.config import load_config
    from assay.runs import find_resume_dir
    from pretraining.config import PretrainConfig, expand_short
    from pretraining.trainer import run_pretrain

    resume_dir = None
    if args.resume is not None:
        resume_dir = find_resume_dir(args.resume, "pretrain", lambda: _load(args).train.output_dir)
        config = load_config(
            PretrainConfig, resume_dir / "config.yaml", expand_short(args.overrides)
        )
    else:
        if args.config is None:
            raise AssayError(
                "assay pretrain needs --config PATH (e.g. configs/pretrain_tiny.yaml)."
            )
        config = _load(args)
    run_dir = run_pretrain(config, resume_dir=resume_dir)
    if os.environ.get("RANK", "0") == "0":
        summary = json.loads((run_dir / "summary.json").read_text())
        ppl = summary.get("eval/ppl")
        print(f"{run_dir}: {summary['method']} loss {summary['final_loss']:.3f}"
              + (f", eval perplexity {ppl:.1f}" if ppl else ""))  # fmt: skip
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from pretraining.sweep import run_sweep

    sizes = args.sizes.split(",")
    tokens = [int(float(t)) for t in args.tokens.split(",")]
    result = run_sweep(lambda extra: _load(args, extra), sizes, tokens, args.out)
    print(result)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from pretraining.prune_job import run_prune_job

    records = run_prune_job(_load(args), args.out, args.rounds, args.fraction, args.scope,
                            args.rewind_step)  # fmt: skip
    print(f"{'round':>5}{'sparsity':>10}{'eval loss':>11}")
    for r in records:
        print(f"{r['round']:>5}{r['sparsity']:>10.3f}{r['loss']:>11.4f}")
    return 0


def _zeroshot(args: argparse.Namespace) -> int:
    from pretraining.zeroshot_job import run_zeroshot

    run_zeroshot(args.models.split(","), args.out, args.limit, args.top_n, args.vocab_file)
    return 0


def _seen(args: argparse.Namespace) -> int:
    from pretraining.trace import trace_phrases

    for row in trace_phrases(args.run, args.phrases):
        step = row["first_step"]
        when = "never read" if step is None else f"first read at step {step}"
        print(f"{row['phrase']!r}: {when}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``pretrain`` and its actions (``pretrain-sweep`` ...; see :func:`route`)."""
    pre = sub.add_parser("pretrain", help="pretrain a LLaMA-style model (full rank or low rank)")
    pre.add_argument("--config", type=Path, help="e.g. configs/pretrain_tiny.yaml")
    pre.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR")
    pre.add_argument("--nproc", type=int, default=1, help="data-parallel processes (torchrun)")
    pre.add_argument("overrides", nargs="*", metavar="key=value",
                     help="method=NAME max_steps=N size=llama-3m lr=... or dotted.keys")  # fmt: skip
    pre.set_defaults(func=_pretrain)

    sweep = sub.add_parser("pretrain-sweep", help="(assay pretrain sweep) model x data grid")
    sweep.add_argument("--config", type=Path, required=True)
    sweep.add_argument("--sizes", default="llama-1m,llama-3m,llama-10m")
    sweep.add_argument("--tokens", default="50000,100000,200000", help="training tokens (D)")
    sweep.add_argument("--out", type=Path, required=True)
    sweep.add_argument("overrides", nargs="*", metavar="key=value")
    sweep.set_defaults(func=_sweep)

    prune = sub.add_parser("pretrain-prune", help="(assay pretrain prune) lottery-ticket IMP")
    prune.add_argument("--config", type=Path, required=True)
    prune.add_argument("--rounds", type=int, default=3)
    prune.add_argument("--fraction", type=float, default=0.2, help="of the remaining weights")
    prune.add_argument("--scope", choices=["global", "layer"], default="global")
    prune.add_argument("--rewind-step", type=int, default=0, help="0 = initialisation")
    prune.add_argument("--out", type=Path, required=True)
    prune.add_argument("overrides", nargs="*", metavar="key=value")
    prune.set_defaults(func=_prune)

    zs = sub.add_parser("pretrain-zeroshot", help="(assay pretrain zeroshot) simplified evals")
    zs.add_argument("--models", required=True, help="comma-separated checkpoints or names")
    zs.add_argument("--limit", type=int, default=None, help="examples per set")
    zs.add_argument("--top-n", type=int, default=None, help="simple vocabulary size")
    zs.add_argument("--vocab-file", type=Path, default=None, help="a word list instead")
    zs.add_argument("--out", type=Path, required=True)
    zs.set_defaults(func=_zeroshot)

    seen = sub.add_parser(
        "pretrain-seen", help="(assay pretrain seen) first step a phrase was read"
    )
    seen.add_argument("--run", type=Path, required=True, help="a pretraining run directory")
    seen.add_argument("phrases", nargs="+")
    seen.set_defaults(func=_seen)

"""``assay icl probe`` (accuracy under prompt corruptions) and ``assay icl attention``
(attention mass by prompt component).

assay icl probe --models NAME --tasks sst2,agnews --corruptions all --seeds 3 --out DIR
assay icl attention --model NAME --task sst2 --corruption all --out FILE.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assay.errors import AssayError


def _icl_probe(args: argparse.Namespace) -> int:
    from envs.icl import TASKS, expand, list_corruptions
    from trainers.icl_probe import plot_over_checkpoints, plot_report, probe, report

    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS and not t.endswith(".json")]
    if unknown:
        raise AssayError(f"--tasks: unknown task {unknown[0]!r}; tasks are {', '.join(TASKS)}.")
    names = list_corruptions() if args.corruptions == "all" else args.corruptions.split(",")
    names = list(dict.fromkeys(["all", *names]))  # the baseline is always measured
    bad = [n for n in names if n.partition(":")[0] not in list_corruptions()]
    if bad:
        raise AssayError(f"--corruptions: unknown {bad[0]!r}; see envs.icl.list_corruptions().")
    models = args.models.split(",")
    if args.checkpoints is not None:
        from assay.checkpoints import list_checkpoints

        models = [str(p) for p in list_checkpoints(args.checkpoints)]
        if not models:
            raise AssayError(f"{str(args.checkpoints)!r} has no checkpoints to probe.")
    results = probe(models, tasks, expand(names, args.demos), args.seeds, args.out,
                    limit=args.limit, n_demos=args.demos, scoring=args.scoring,
                    mode=args.mode)  # fmt: skip
    rows = report(results)
    (args.out / "report.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot_report(rows, args.out / "report.png")
    if args.checkpoints is not None:
        plot_over_checkpoints(rows, args.out / "over_training.png")
    print(f"{'model':24}{'task':8}{'corruption':34}{'acc':>7}{'delta':>8}{'se':>7}")
    for r in rows:
        print(f"{r['model'][:23]:24}{r['task']:8}{r['corruption'][:33]:34}{r['accuracy']:>7.3f}"
              f"{r['delta_vs_all']:>+8.3f}{r['delta_se']:>7.3f}")  # fmt: skip
    return 0


def _icl_attention(args: argparse.Namespace) -> int:
    import numpy as np

    from assay.models import load_causal_lm
    from envs.icl import Layout, corrupt
    from envs.icl.env import balanced_demos, build_parts
    from envs.icl.tasks import resolve_task
    from trainers.icl_probe import COMPONENTS, attention_by_component, plot_attention

    model, tokenizer = load_causal_lm(args.model)
    task = resolve_task(args.task)
    rng = np.random.default_rng(args.seed)
    test = task.tests[int(rng.integers(len(task.tests)))]
    parts = build_parts(task, balanced_demos(task, args.demos, rng), test)
    parts = corrupt(parts, args.corruption, args.seed, task.label_space, tokenizer)
    mass = attention_by_component(model, tokenizer, parts, Layout(input_prefix=task.input_prefix))
    plot_attention(mass, args.out, f"{args.model} · {args.task} · {args.corruption}")
    means = mass.mean(dim=(0, 1)).tolist()
    print("  ".join(f"{c}={m:.3f}" for c, m in zip(COMPONENTS, means, strict=True)))
    print(f"wrote {args.out}")
    return 0


def _add_probe(icl: argparse._SubParsersAction) -> None:
    probe = icl.add_parser("probe", help="accuracy under prompt corruptions (resumable)")
    probe.add_argument("--models", default="smollm2-135m-instruct", help="comma-separated")
    probe.add_argument(
        "--tasks",
        default="sst2,agnews",
        help="comma-separated: shipped tasks or Super-NaturalInstructions task files (.json)",
    )
    probe.add_argument("--corruptions", default="all", help="'all' (every one) or a list")
    probe.add_argument("--seeds", type=int, default=3, help="demonstration draws")
    probe.add_argument("--limit", type=int, default=50, help="test instances per cell")
    probe.add_argument("--demos", type=int, default=4)
    probe.add_argument(
        "--scoring", choices=["generate", "loglik", "calibrated"], default="generate"
    )
    probe.add_argument("--mode", choices=["chat", "plain"], default="chat")
    probe.add_argument("--out", type=Path, required=True)
    probe.add_argument(
        "--checkpoints",
        type=Path,
        metavar="RUN_DIR",
        help="probe every checkpoint of a training run instead of --models",
    )
    probe.set_defaults(func=_icl_probe)


def _add_attention(icl: argparse._SubParsersAction) -> None:
    attention = icl.add_parser("attention", help="attention mass by prompt component (heatmap)")
    attention.add_argument("--model", default="smollm2-135m-instruct")
    attention.add_argument("--task", default="sst2")
    attention.add_argument("--corruption", default="all")
    attention.add_argument("--demos", type=int, default=4)
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--out", type=Path, required=True, help="PNG file")
    attention.set_defaults(func=_icl_attention)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``icl probe`` and ``icl attention``."""
    icl = sub.add_parser("icl", help="in-context-learning probes").add_subparsers(
        dest="action", required=True
    )
    _add_probe(icl)
    _add_attention(icl)

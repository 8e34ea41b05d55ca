"""``assay analyze`` and ``assay study``.

assay analyze --runs RUN_DIR[,RUN_DIR|MODEL ...] --suite geometry|grammar|all --out DIR [key=value ...]
assay study lowrank [--config configs/study_lowrank_tiny.yaml] [key=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

STUDIES = {"lowrank": "configs/study_lowrank_tiny.yaml"}


def _analyze(args: argparse.Namespace) -> int:
    from analysis.report import AnalysisConfig, analyze
    from assay.config import load_config

    config = load_config(AnalysisConfig, None, [f"suite={args.suite}", *args.overrides])
    analyze(args.runs.split(","), args.out, config)
    print(f"report: {args.out / 'report.md'}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from analysis.study import StudyConfig, run_study
    from assay.config import load_config

    config = load_config(StudyConfig, args.config or STUDIES[args.name], args.overrides)
    print(f"report: {run_study(config)}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``analyze`` and ``study``."""
    analyze = sub.add_parser("analyze", help="geometry and grammar of checkpoints -> report.md")
    analyze.add_argument("--runs", required=True, help="run directories or models, comma-separated")
    analyze.add_argument("--suite", choices=["geometry", "grammar", "all"], default="geometry")
    analyze.add_argument("--out", type=Path, required=True)
    analyze.add_argument("overrides", nargs="*", metavar="key=value",
                         help="analysis settings, e.g. eval_windows=32 geometry.points=21")  # fmt: skip
    analyze.set_defaults(func=_analyze)

    study = sub.add_parser("study", help="end-to-end studies (pretrain, then analyze)")
    study.add_argument("name", choices=sorted(STUDIES))
    study.add_argument("--config", type=Path, default=None)
    study.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. out=runs/my-study")
    study.set_defaults(func=_study)

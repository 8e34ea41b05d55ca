"""The ``assay`` command line: the top layer, above the library. Each command family is one
module of this package that adds its subcommands to the parser; nothing outside ``assay.cli``
imports it.

assay train rl --config configs/codenames_guess.yaml [key=value ...] [--resume [RUN_DIR]] [--nproc N]
assay eval math --model NAME --env math-gsm8k-v0 [--n 200] [--samples K] [--few-shot 4]
assay eval rerank --policy NAME --orm DIR --prm DIR --n 64
assay rm data --policy NAME --env math-gsm8k-v0 --problems 200 --samples 8 --out DIR
assay rm train --kind orm|prm --data DIR --out DIR
assay rollout --model NAME --env ID --n 1000 --samples K --out DIR [--replicas N] [--seat AGENT=WHO]
assay codenames export --task guess --n 4000 --out DIR
assay play codenames [--seat red/spymaster=human] [--watch] [--seed N]
assay pretrain --config configs/pretrain_tiny.yaml [method=relora max_steps=N ...] [--resume] [--nproc N]
assay pretrain sweep / prune / zeroshot / seen ...  (see assay/cli/pretrain.py)
assay analyze --runs RUN_DIR,RUN_DIR --suite geometry|grammar|all --out DIR
assay study lowrank [--config configs/study_lowrank_tiny.yaml]
assay icl probe --models NAME --tasks sst2,agnews --corruptions all --seeds 3 --out DIR
assay envs list
assay envs check ID [option=value ...]
assay serve env ID [option=value ...] [--host H] [--port N]   (OpenEnv's protocol)
"""

from __future__ import annotations

import argparse
import sys

from assay.cli import (
    analysis,
    codenames,
    envs,
    evaluate,
    icl,
    pretrain,
    rm,
    rollout,
    serve,
    train,
)
from assay.errors import AssayError


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; families register in the order ``assay --help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="assay", description="Train language models with verifiable rewards."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parsers(sub)
    suites = evaluate.add_parsers(sub)
    rm.add_parsers(sub, suites)
    pretrain.add_parsers(sub)
    analysis.add_parsers(sub)
    rollout.add_parsers(sub)
    codenames.add_parsers(sub)
    icl.add_parsers(sub)
    envs.add_parsers(sub)
    serve.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; an :class:`AssayError` is printed as one line and exits with code 2."""
    args = build_parser().parse_args(pretrain.route(sys.argv[1:] if argv is None else list(argv)))
    try:
        return args.func(args)
    except AssayError as err:
        print(f"assay: error: {err}", file=sys.stderr)
        return 2

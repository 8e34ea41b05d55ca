"""The ``assay`` command line.

assay train rl --config configs/codenames_guess.yaml [key=value ...] [--resume [RUN_DIR]]
assay envs list
assay envs check ID [option=value ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assay.errors import AssayError, CheckpointError


def _train_rl(args: argparse.Namespace) -> int:
    from assay.config import load_config
    from assay.runs import latest_run_dir
    from trainers.config import RLConfig
    from trainers.rl import run_rl

    resume_dir = None
    if args.resume is not None:
        if args.resume == "latest":
            probe = load_config(RLConfig, args.config, args.overrides)
            resume_dir = latest_run_dir(probe.train.output_dir, "rl")
            if resume_dir is None:
                raise CheckpointError(f"No run to resume under {probe.train.output_dir!r}.")
        else:
            resume_dir = Path(args.resume)
        if not (resume_dir / "config.yaml").exists():
            raise CheckpointError(f"{str(resume_dir)!r} is not a run directory (no config.yaml).")
        # A resumed run keeps its own config; overrides may extend it (e.g. train.steps=200).
        config = load_config(RLConfig, resume_dir / "config.yaml", args.overrides)
    else:
        if args.config is None:
            raise AssayError(
                "assay train rl needs --config PATH (e.g. configs/codenames_guess.yaml)."
            )
        config = load_config(RLConfig, args.config, args.overrides)
    run_rl(config, resume_dir=resume_dir)
    return 0


def _envs_list(args: argparse.Namespace) -> int:
    import envs

    for env_id in envs.list_envs():
        print(f"{env_id:28} {envs.spec(env_id).source}")
    return 0


def _envs_check(args: argparse.Namespace) -> int:
    import envs
    from assay.config import parse_overrides

    env = envs.make(args.id, **parse_overrides(args.options))
    results = envs.check_env(env)
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        print(f"{mark}  {r.name}" + (f": {r.message}" if r.message else ""))
    failed = sum(not r.passed for r in results)
    print(f"{args.id}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay", description="Train language models with verifiable rewards."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a policy").add_subparsers(dest="job", required=True)
    rl = train.add_parser("rl", help="RL (GRPO) on a text environment")
    rl.add_argument("--config", type=Path, help="YAML config (see configs/)")
    rl.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="resume RUN_DIR (default: the latest rl run) from its last checkpoint",
    )
    rl.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    rl.set_defaults(func=_train_rl)

    env_cmd = sub.add_parser("envs", help="list and check environments").add_subparsers(
        dest="action", required=True
    )
    env_cmd.add_parser("list", help="list registered environments").set_defaults(func=_envs_list)
    check = env_cmd.add_parser("check", help="run the TextEnv contract checker")
    check.add_argument("id")
    check.add_argument("options", nargs="*", metavar="option=value", help="env options")
    check.set_defaults(func=_envs_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AssayError as err:
        print(f"assay: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

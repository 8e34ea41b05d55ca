"""``assay train rl``: an RL run from a config, resumed from its run folder, or spread over
``--nproc`` data-parallel processes.

assay train rl --config configs/codenames_guess.yaml [key=value ...] [--resume [RUN_DIR]] [--nproc N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from assay.errors import AssayError


def _launch_ranks(args: argparse.Namespace) -> int:
    """Run this same command as ``args.nproc`` processes under torchrun (data-parallel)."""
    from assay.distributed import launch_ranks

    if args.nproc < 1:
        raise AssayError(f"--nproc must be >= 1, got {args.nproc}.")
    command = ["train", "rl"]
    if args.config is not None:
        command += ["--config", str(args.config)]
    if args.resume is not None:
        command += ["--resume", args.resume]
    if args.trust_run_config:
        command += ["--trust-run-config"]
    return launch_ranks(args.nproc, [*command, *args.overrides])


def _train_rl(args: argparse.Namespace) -> int:
    import os

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_ranks(args)
    from assay.config import load_config
    from assay.runs import find_resume_dir
    from trainers.rl.config import RLConfig
    from trainers.rl.job import run_rl

    resume_dir = None
    if args.resume is not None:
        resume_dir = find_resume_dir(
            args.resume,
            "rl",
            lambda: load_config(RLConfig, args.config, args.overrides).train.output_dir,
        )
        # A resumed run keeps its own config; overrides may extend it (e.g. train.steps=200).
        check_resumed_destinations(
            resume_dir / "config.yaml", args.overrides, args.trust_run_config
        )
        config = load_config(RLConfig, resume_dir / "config.yaml", args.overrides)
    else:
        if args.config is None:
            raise AssayError(
                "assay train rl needs --config PATH (e.g. configs/codenames_guess.yaml)."
            )
        config = load_config(RLConfig, args.config, args.overrides)
    run_rl(config, resume_dir=resume_dir)
    return 0


def _train_sft(args: argparse.Namespace) -> int:
    from trainers.sft_job import SFTConfig, run_sft

    return _fine_tune(args, "sft", SFTConfig, run_sft, "configs/sft_codenames_teacher.yaml")


def _train_rft(args: argparse.Namespace) -> int:
    from trainers.rft import RFTConfig, run_rft

    return _fine_tune(args, "rft", RFTConfig, run_rft, "configs/rft_codenames.yaml")


def _fine_tune(args: argparse.Namespace, job: str, config_class, run, example: str) -> int:
    """``assay train sft|rft``: a new run from ``--config``, or ``--resume`` one with its saved
    config (and any overrides)."""
    from assay.config import load_config
    from assay.runs import find_resume_dir

    resume_dir = None
    if args.resume is not None:
        resume_dir = find_resume_dir(
            args.resume, job,
            lambda: load_config(config_class, args.config, args.overrides).train.output_dir,
        )  # fmt: skip
        config = load_config(config_class, resume_dir / "config.yaml", args.overrides)
    elif args.config is None:
        raise AssayError(f"assay train {job} needs --config PATH (e.g. {example}).")
    else:
        config = load_config(config_class, args.config, args.overrides)
    run(config, resume_dir=resume_dir)
    return 0


def check_resumed_destinations(config_path: Path, overrides: list[str], trusted: bool) -> None:
    """Refuse to resume a run whose saved config sends data off this machine (a judge's
    ``base_url`` and ``key_env``, a Ray ``engines.address``, an ``openenv:`` env's server) unless the command line names the
    same settings again or ``--trust-run-config`` is given: a run folder from elsewhere could
    point them anywhere, and the judge's key would go along."""
    import yaml

    try:
        saved = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # load_config reports it in one sentence
    found: list[tuple[str, Any]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{key}" if path else str(key)
                if key in ("base_url", "key_env") and path.endswith("judge_options") and value:
                    found.append((child, value))
                walk(value, child)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(saved, "")
    if isinstance(saved.get("engines"), dict) and saved["engines"].get("address"):
        found.append(("engines.address", saved["engines"]["address"]))
    env_id = saved.get("env", {}).get("id") if isinstance(saved.get("env"), dict) else None
    if isinstance(env_id, str) and env_id.startswith("openenv:"):  # a remote env's server
        found.append(("env.id", env_id))
    given = {o.split("=", 1)[0].strip() for o in overrides if "=" in o}
    unconfirmed = [(path, value) for path, value in found if path not in given]
    if unconfirmed and not trusted:
        listed = ", ".join(f"{path}={value}" for path, value in unconfirmed)
        raise AssayError(
            f"{config_path} sends data off this machine ({listed}); a run folder from elsewhere "
            "could point these anywhere. Give them again on the command line (key=value) or "
            "pass --trust-run-config."
        )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train rl``."""
    train = sub.add_parser("train", help="train a policy").add_subparsers(dest="job", required=True)
    rl = train.add_parser("rl", help="RL (GRPO family, PPO) on a text environment")
    rl.add_argument("--config", type=Path, help="YAML config (see configs/)")
    rl.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes (torchrun; one per GPU, or gloo on CPU)",
    )
    rl.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="resume RUN_DIR (default: the latest rl run) from its last checkpoint",
    )
    rl.add_argument(
        "--trust-run-config",
        action="store_true",
        help="on --resume, accept the run's judge endpoint, key variable and Ray address as saved",
    )
    rl.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    rl.set_defaults(func=_train_rl)
    for job, about, func in (
        ("sft", "supervised fine-tuning on the assistant's tokens only", _train_sft),
        ("rft", "rejection-sampling fine-tuning: sample, keep the rewarded answers, SFT, repeat",
         _train_rft),
    ):  # fmt: skip
        parser = train.add_parser(job, help=about)
        parser.add_argument("--config", type=Path, help=f"YAML config (see configs/{job}_*.yaml)")
        parser.add_argument(
            "--resume",
            nargs="?",
            const="latest",
            default=None,
            metavar="RUN_DIR",
            help=f"continue a run where it stopped (default: the latest {job} run)",
        )
        parser.add_argument(
            "overrides", nargs="*", metavar="key=value", help="dotted config overrides"
        )
        parser.set_defaults(func=func)

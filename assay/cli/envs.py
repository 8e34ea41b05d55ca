"""``assay envs list`` and ``assay envs check``: the registered environments, and the TextEnv
contract checker run over one of them.

assay envs list
assay envs check ID [option=value ...]
assay envs export ID --n N --out DIR --format verl|skyrl [--validation 0.1] [--seed 0] [option=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assay.cli.argtypes import count


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


def _envs_export(args: argparse.Namespace) -> int:
    from assay.config import parse_overrides
    from assay.errors import ConfigError
    from envs.export import episode_rows, write_split

    if not 0 < args.validation < 1:
        raise ConfigError(f"--validation must be in (0, 1), got {args.validation}.")
    options = parse_overrides(args.options)
    n_val = max(1, round(args.n * args.validation))
    base = args.seed * 10_000_000  # train and validation seeds never meet
    seeds = {
        "train": [base + i for i in range(args.n - n_val)],
        "validation": [base + 5_000_000 + i for i in range(n_val)],
    }
    for split, chosen in seeds.items():
        rows = episode_rows(args.id, options, chosen, split)
        path = write_split(rows, args.format, args.out / f"{split}.parquet")
        print(f"wrote {path} ({len(rows)} episodes, {args.format} schema)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``envs list`` and ``envs check``."""
    env_cmd = sub.add_parser("envs", help="list and check environments").add_subparsers(
        dest="action", required=True
    )
    env_cmd.add_parser("list", help="list registered environments").set_defaults(func=_envs_list)
    check = env_cmd.add_parser("check", help="run the TextEnv contract checker")
    check.add_argument("id")
    check.add_argument("options", nargs="*", metavar="option=value", help="env options")
    check.set_defaults(func=_envs_check)
    export = env_cmd.add_parser("export", help="write episodes as verl's or SkyRL's dataset")
    export.add_argument("id")
    export.add_argument("options", nargs="*", metavar="option=value", help="env options")
    export.add_argument("--n", type=count, default=1000, help="episodes in all")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--format", choices=["verl", "skyrl"], required=True)
    export.add_argument("--validation", type=float, default=0.1, help="validation fraction")
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(func=_envs_export)

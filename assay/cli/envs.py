"""``assay envs list`` and ``assay envs check``: the registered environments, and the TextEnv
contract checker run over one of them.

assay envs list
assay envs check ID [option=value ...]
"""

from __future__ import annotations

import argparse


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

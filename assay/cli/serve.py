"""``assay serve env``: one registered env over OpenEnv's protocol (``envs.serve.server``).

assay serve env ID [option=value ...] [--host 127.0.0.1] [--port 8000] [--max-sessions 64]
                   [--idle-timeout 300] [--request-timeout 60] [--max-request-bytes 1048576]
"""

from __future__ import annotations

import argparse

from assay.cli.argtypes import count


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _serve_env(args: argparse.Namespace) -> int:
    import envs
    from assay.config import parse_overrides
    from assay.errors import ConfigError

    try:
        from envs.serve.server import ServerLimits, serve
    except ImportError as err:
        raise ConfigError(str(err)) from None
    options = parse_overrides(args.options)
    envs.make(args.id, **options).close()  # a bad id or option fails here, in one line
    limits = ServerLimits(
        max_sessions=args.max_sessions,
        idle_timeout_s=args.idle_timeout,
        request_timeout_s=args.request_timeout,
        max_request_bytes=args.max_request_bytes,
    )
    serve(args.id, options, args.host, args.port, limits)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``serve env``."""
    serve_cmd = sub.add_parser("serve", help="serve an environment to other trainers")
    actions = serve_cmd.add_subparsers(dest="action", required=True)
    env = actions.add_parser("env", help="serve one env over OpenEnv's HTTP/WebSocket protocol")
    env.add_argument("id")
    env.add_argument("options", nargs="*", metavar="option=value", help="env options")
    env.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    env.add_argument("--port", type=count, default=8000)
    env.add_argument("--max-sessions", type=count, default=64, help="episodes at once")
    env.add_argument("--idle-timeout", type=_positive, default=300.0, help="seconds")
    env.add_argument("--request-timeout", type=_positive, default=60.0, help="seconds per step")
    env.add_argument("--max-request-bytes", type=count, default=1 << 20)
    env.set_defaults(func=_serve_env)

"""``assay codenames export`` (boards as a parquet dataset) and ``assay play codenames`` (the
full game in the terminal; the game loop and its agents are in :mod:`assay.cli.play`).

assay codenames export --task guess --n 4000 --out DIR [--format assay|verl|skyrl]
assay play codenames [--seat red/spymaster=human] [--watch] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assay.errors import AssayError


def _codenames_export(args: argparse.Namespace) -> int:
    from assay.config import parse_overrides
    from envs.codenames.export import export_boards, write_boards
    from envs.codenames.tiers import TIERS

    tiers = tuple(args.tiers.split(",")) if args.tiers else TIERS
    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        raise AssayError(f"--tiers: unknown tier {unknown[0]!r}; tiers are {', '.join(TIERS)}.")
    try:
        dataset = export_boards(
            args.task, args.n, args.validation, tiers, args.seed, parse_overrides(args.options)
        )
    except ValueError as err:
        raise AssayError(str(err)) from None
    if args.format == "assay":
        for path in write_boards(dataset, args.out):
            print(f"wrote {path} ({dataset[path.stem].num_rows} boards)")
        return 0
    from envs.export import write_split

    for split, data in dataset.items():
        rows = [{**row, "split": split} for row in data]
        path = write_split(rows, args.format, args.out / f"{split}.parquet")
        print(f"wrote {path} ({len(rows)} boards, {args.format} schema)")
    return 0


def _play_codenames(args: argparse.Namespace) -> int:
    import envs
    from assay.cli.play import make_agents, parse_seats, play

    try:
        who = parse_seats(args.seat)
    except ValueError as err:
        raise AssayError(str(err)) from None
    if args.watch:
        if "human" in who.values():
            raise AssayError("--watch plays models against each other; drop the human seats.")
    elif not who:
        who = {"red/operative": "human"}  # the default: you guess for red
    if args.model:
        who = {seat: who.get(seat, args.model) for seat in ("red/spymaster", "red/operative",
                                                            "blue/spymaster", "blue/operative")}  # fmt: skip
    colour = not args.no_colour
    agents = make_agents(who, colour=colour)
    env = envs.make("codenames-game-v0", max_turns=args.max_turns)
    try:
        play(env, agents, args.seed, watch=args.watch, colour=colour)
    except (EOFError, KeyboardInterrupt):
        print("\nGame abandoned.")
    return 0


def _add_play(sub: argparse._SubParsersAction) -> None:
    play_cmd = sub.add_parser("play", help="play a game in the terminal").add_subparsers(
        dest="game", required=True
    )
    cn = play_cmd.add_parser("codenames", help="the full two-team Codenames game")
    cn.add_argument(
        "--seat",
        action="append",
        default=[],
        metavar="SEAT=WHO",
        help="who plays a seat (red/spymaster, red/operative, blue/..., or a team): human, "
        "embedding, random or a model name; default: you are red/operative, the rest embedding",
    )
    cn.add_argument("--model", help="a model name for every seat not set by --seat")
    cn.add_argument("--watch", action="store_true", help="agents only; print the game")
    cn.add_argument("--seed", type=int, default=None, help="reproduce a board")
    cn.add_argument("--max-turns", type=int, default=30)
    cn.add_argument("--no-colour", action="store_true", help="plain text board")
    cn.set_defaults(func=_play_codenames)


def _add_export(sub: argparse._SubParsersAction) -> None:
    codenames = sub.add_parser("codenames", help="Codenames tools").add_subparsers(
        dest="action", required=True
    )
    export = codenames.add_parser("export", help="write boards as a parquet dataset")
    export.add_argument("--task", choices=["guess", "clue"], default="guess")
    export.add_argument("--n", type=int, default=4000, help="boards in all (train + validation)")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--validation", type=float, default=0.1, help="validation fraction")
    export.add_argument("--tiers", default="", help="comma-separated (default: all four)")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--format", choices=["assay", "verl", "skyrl"], default="assay",
                        help="assay's columns, or verl's / SkyRL's schema (docs/interop.md)")  # fmt: skip
    export.add_argument("options", nargs="*", metavar="option=value", help="env options")
    export.set_defaults(func=_codenames_export)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``play codenames`` and ``codenames export`` (in that order: ``assay --help``
    lists commands as they are added)."""
    _add_play(sub)
    _add_export(sub)

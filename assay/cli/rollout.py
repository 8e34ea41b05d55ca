"""``assay rollout``: play episodes of an env with a model and save them as a dataset.

assay rollout --model NAME --env ID --n 1000 --samples K --out DIR [--replicas N] [--seat AGENT=WHO]
    [--format verl|skyrl]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assay.cli.argtypes import count, token_budget
from assay.errors import AssayError


def _rollout(args: argparse.Namespace) -> int:
    import envs
    from assay.config import parse_overrides
    from assay.models import weights_fingerprint
    from trainers.collect import check_seats, collect_rollouts, parse_seats, seat_policies
    from trainers.engines.base import Sampling
    from trainers.engines.factory import open_engine

    if args.n < 1 or args.samples < 1 or args.replicas < 1:
        raise AssayError("--n, --samples and --replicas must be positive.")
    options = parse_overrides(args.env_options)
    env = envs.make(args.env, **options)  # bad env options fail before any model loads
    seat_names = parse_seats(args.seat)
    check_seats(seat_names, env)  # before any model loads
    if args.max_turns < 1:
        raise AssayError("--max-turns must be positive.")
    if args.format and len(env.possible_agents) > 1:
        raise AssayError(
            f"--format {args.format} writes one prompt and one answer per row; {args.env} is a "
            f"game of {len(env.possible_agents)} agents (use the `datasets` folder)."
        )
    policy = {  # what made the rows: a resumed --out must be made by the same
        "model": args.model,
        "weights": weights_fingerprint(args.model),
        "dtype": args.dtype,
        "backend": args.backend,
        "tensor_parallel_size": args.tensor_parallel_size,
    }
    engine, tokenizer = open_engine(
        args.model,
        backend=args.backend,
        replicas=args.replicas,
        dtype=args.dtype,
        device=args.device,
        tensor_parallel_size=args.tensor_parallel_size,
        address=args.ray_address,
    )
    sampling = Sampling(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    seat_engines: list = []
    try:

        def open_model(name: str):  # one HF engine in this process, beside the main engines
            return open_engine(name, dtype=args.dtype, device=args.device)

        seats, seat_engines = seat_policies(seat_names, env, tokenizer, open_model)
        dataset = collect_rollouts(
            engine,
            lambda: envs.make(args.env, **options),
            tokenizer,
            args.out,
            n=args.n,
            samples=args.samples,
            sampling=sampling,
            shard_size=args.shard_size,
            seats=seats,
            seat_names=seat_names,
            max_turns=args.max_turns,
            policy=policy,
        )
    finally:
        for opened in [engine, *seat_engines]:
            opened.close()
    rewards = dataset["reward"] if len(dataset) else []
    print(f"{len(dataset)} rows (contexts), mean reward {sum(rewards) / max(1, len(rewards)):.3f}")
    print(f"datasets.load_from_disk({str(args.out / 'dataset')!r})")
    if args.format:
        from envs.export import rollout_rows, write_split

        try:
            rows = rollout_rows(dataset, args.env, options)
        except ValueError as err:
            raise AssayError(f"--format {args.format}: {err}.") from None
        path = write_split(rows, args.format, args.out / args.format / "train.parquet")
        print(f"wrote {path} ({len(rows)} rows, {args.format} schema; answers under extra_info)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``rollout``."""
    rollout = sub.add_parser("rollout", help="play episodes and save them as a dataset")
    rollout.add_argument("--model", default="smollm2-135m-instruct", help="model registry name")
    rollout.add_argument("--env", required=True, help="env id (assay envs list)")
    rollout.add_argument("--n", type=count, default=100, help="episodes (seeds)")
    rollout.add_argument("--samples", type=count, default=1, help="episodes per seed")
    rollout.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    rollout.add_argument("--temperature", type=float, default=0.7)
    rollout.add_argument("--max-new-tokens", type=token_budget, default=256)
    rollout.add_argument("--seed", type=int, default=0)
    rollout.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    rollout.add_argument("--replicas", type=count, default=1, help="engines on a Ray pool if > 1")
    rollout.add_argument(
        "--tensor-parallel-size", type=count, default=1, help="vLLM: GPUs per engine"
    )
    rollout.add_argument(
        "--ray-address",
        help="Ray cluster for the pool (default: RAY_ADDRESS, else what ray.init() finds)",
    )
    rollout.add_argument(
        "--seat",
        action="append",
        default=[],
        metavar="AGENT=WHO",
        help="another policy for agents matching AGENT (fnmatch, e.g. 'blue/*'): a scripted "
        "agent of the env (codenames: embedding, random) or a model sharing --model's tokenizer",
    )
    rollout.add_argument(
        "--max-turns", type=count, default=256, help="steps per episode before it is cut"
    )
    rollout.add_argument("--shard-size", type=count, default=64, help="seeds per saved shard")
    rollout.add_argument(
        "--format",
        choices=["verl", "skyrl"],
        help="also write DIR/FORMAT/train.parquet in verl's or SkyRL's schema (single-turn envs)",
    )
    rollout.add_argument("--dtype", default="float32")
    rollout.add_argument("--device", default="cpu")
    rollout.add_argument("env_options", nargs="*", metavar="option=value", help="env options")
    rollout.set_defaults(func=_rollout)

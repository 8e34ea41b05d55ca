"""The ``assay`` command line.

assay train rl --config configs/codenames_guess.yaml [key=value ...] [--resume [RUN_DIR]] [--nproc N]
assay eval math --model NAME --env math-gsm8k-v0 [--n 200] [--samples K] [--few-shot 4]
assay eval rerank --policy NAME --orm DIR --prm DIR --n 64
assay rm data --policy NAME --env math-gsm8k-v0 --problems 200 --samples 8 --out DIR
assay rm train --kind orm|prm --data DIR --out DIR
assay rollout --model NAME --env ID --n 1000 --samples K --out DIR [--replicas N] [--seat AGENT=WHO]
assay codenames export --task guess --n 4000 --out DIR
assay play codenames [--seat red/spymaster=human] [--watch] [--seed N]
assay pretrain --config configs/pretrain_tiny.yaml [method=relora max_steps=N ...] [--resume] [--nproc N]
assay pretrain sweep / prune / zeroshot / seen ...  (see assay/pretrain_commands.py)
assay analyze --runs RUN_DIR,RUN_DIR --suite geometry|grammar|all --out DIR
assay study lowrank [--config configs/study_lowrank_tiny.yaml]
assay icl probe --models NAME --tasks sst2,agnews --corruptions all --seeds 3 --out DIR
assay envs list
assay envs check ID [option=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
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


def check_resumed_destinations(config_path: Path, overrides: list[str], trusted: bool) -> None:
    """Refuse to resume a run whose saved config sends data off this machine (a judge's
    ``base_url`` and ``key_env``, a Ray ``rollout.address``) unless the command line names the
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
    if isinstance(saved.get("rollout"), dict) and saved["rollout"].get("address"):
        found.append(("rollout.address", saved["rollout"]["address"]))
    given = {o.split("=", 1)[0].strip() for o in overrides if "=" in o}
    unconfirmed = [(path, value) for path, value in found if path not in given]
    if unconfirmed and not trusted:
        listed = ", ".join(f"{path}={value}" for path, value in unconfirmed)
        raise AssayError(
            f"{config_path} sends data off this machine ({listed}); a run folder from elsewhere "
            "could point these anywhere. Give them again on the command line (key=value) or "
            "pass --trust-run-config."
        )


def _eval_math(args: argparse.Namespace) -> int:
    import envs
    from assay.models import load_causal_lm
    from assay.runs import new_run_dir, write_json
    from trainers.engines.base import Sampling
    from trainers.engines.hf import HFEngine
    from trainers.math_eval import evaluate_math, format_summary

    if not args.env.startswith("math-"):
        raise AssayError(f"assay eval math needs a math env (math-...), got {args.env!r}.")
    if args.n < 1 or args.samples < 1:
        raise AssayError(f"--n and --samples must be positive, got {args.n} and {args.samples}.")
    env = envs.make(args.env, split="test", few_shot=args.few_shot, prompt_style=args.prompt_style)
    temperature = args.temperature
    if temperature is None:
        temperature = 0.0 if args.samples == 1 else 0.7
    if temperature == 0.0 and args.samples > 1:
        raise AssayError("--samples > 1 needs --temperature > 0 (greedy samples are identical).")
    sampling = Sampling(
        n=args.samples,
        temperature=temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        logprobs=False,
    )
    model, tokenizer = load_causal_lm(args.model, dtype=args.dtype, device=args.device)
    run_dir = new_run_dir(args.output_dir, "eval-math")
    settings = {**vars(args), "temperature": temperature}
    settings.pop("func")
    write_json(run_dir / "settings.json", {k: str(v) if isinstance(v, Path) else v
                                           for k, v in settings.items()})  # fmt: skip
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size * args.samples)
    summary = evaluate_math(
        engine, env, args.n, sampling, run_dir / "samples.jsonl", batch_size=args.batch_size
    )
    summary.update(model=args.model, env=args.env, few_shot=args.few_shot, temperature=temperature)
    write_json(run_dir / "summary.json", summary)
    print(f"{args.model} on {args.env} (test, first {summary['problems']} problems, "
          f"{args.few_shot}-shot, {args.samples} sample(s), T={temperature:g})")  # fmt: skip
    print(format_summary(summary))
    print(f"samples and summary: {run_dir}")
    return 0


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
    for path in write_boards(dataset, args.out):
        print(f"wrote {path} ({dataset[path.stem].num_rows} boards)")
    return 0


def _play_codenames(args: argparse.Namespace) -> int:
    import envs
    from assay.play import make_agents, parse_seats, play

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
                    args.limit, args.demos, args.scoring, args.mode)  # fmt: skip
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


def count(text: str) -> int:
    """An argparse type: a whole number >= 1 (so a bad value fails before any run folder or
    manifest exists)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value


def token_budget(text: str) -> int:
    """An argparse type: new tokens per answer, 1 to ``trainers.rl.config.MAX_NEW_TOKENS``."""
    from trainers.rl.config import MAX_NEW_TOKENS

    value = count(text)
    if value > MAX_NEW_TOKENS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_NEW_TOKENS:,}, got {value:,}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay", description="Train language models with verifiable rewards."
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    evaluate = sub.add_parser("eval", help="evaluate a model").add_subparsers(
        dest="suite", required=True
    )
    math_eval = evaluate.add_parser("math", help="accuracy, pass@k, maj@k on GSM8K / MATH")
    math_eval.add_argument("--model", default="smollm2-135m-instruct", help="model registry name")
    math_eval.add_argument("--env", default="math-gsm8k-v0", help="math env id (test split)")
    math_eval.add_argument("--n", type=count, default=200, help="first N test problems")
    math_eval.add_argument("--samples", type=count, default=1, help="samples per problem (k)")
    math_eval.add_argument("--few-shot", type=int, default=0, help="solved exemplars (0-8)")
    math_eval.add_argument("--prompt-style", choices=("chat", "plain"), default="chat")
    math_eval.add_argument(
        "--temperature", type=float, help="default: 0 (greedy) for 1 sample, 0.7 for several"
    )
    math_eval.add_argument("--top-p", type=float, default=1.0)
    math_eval.add_argument("--max-new-tokens", type=token_budget, default=320)
    math_eval.add_argument(
        "--batch-size", type=count, default=16, help="problems per generate call"
    )
    math_eval.add_argument("--seed", type=int, default=0)
    math_eval.add_argument("--dtype", default="float32")
    math_eval.add_argument("--device", default="cpu")
    math_eval.add_argument("--output-dir", type=Path, default=Path("runs"))
    math_eval.set_defaults(func=_eval_math)

    from assay import analysis_commands, pretrain_commands, rm_commands

    rm_commands.add_parsers(sub, evaluate)
    pretrain_commands.add_parsers(sub)
    analysis_commands.add_parsers(sub)

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
    rollout.add_argument("--dtype", default="float32")
    rollout.add_argument("--device", default="cpu")
    rollout.add_argument("env_options", nargs="*", metavar="option=value", help="env options")
    rollout.set_defaults(func=_rollout)

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
    export.add_argument("options", nargs="*", metavar="option=value", help="env options")
    export.set_defaults(func=_codenames_export)

    icl = sub.add_parser("icl", help="in-context-learning probes").add_subparsers(
        dest="action", required=True
    )
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

    attention = icl.add_parser("attention", help="attention mass by prompt component (heatmap)")
    attention.add_argument("--model", default="smollm2-135m-instruct")
    attention.add_argument("--task", default="sst2")
    attention.add_argument("--corruption", default="all")
    attention.add_argument("--demos", type=int, default=4)
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--out", type=Path, required=True, help="PNG file")
    attention.set_defaults(func=_icl_attention)

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
    from assay.pretrain_commands import route

    args = build_parser().parse_args(route(sys.argv[1:] if argv is None else list(argv)))
    try:
        return args.func(args)
    except AssayError as err:
        print(f"assay: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

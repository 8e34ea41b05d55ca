"""``assay eval math``: accuracy, pass@k and maj@k of a model on a math env's test split;
``assay eval env``: format and skill of a model on any single-turn env's held-out episodes.
(``assay eval rerank`` is registered by :mod:`assay.cli.rm`, beside the reward models it uses.)

assay eval math --model NAME --env math-gsm8k-v0 [--n 200] [--samples K] [--few-shot 4]
assay eval env ENV_ID [option=value ...] --model NAME|RUN_DIR [--episodes 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assay.cli.argtypes import count, token_budget
from assay.errors import AssayError


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


def _eval_env(args: argparse.Namespace) -> int:
    import envs
    from assay.config import parse_overrides
    from assay.runs import new_run_dir, write_json
    from trainers.engines.factory import open_engine
    from trainers.evaluate import evaluate_policy
    from trainers.rl.evaluation import EVAL_ROWS

    if args.seed_offset < 1_000_000_000:
        raise AssayError("--seed-offset must be >= 10**9: training seeds stay below it.")
    env = envs.make(args.id, **parse_overrides(args.options))
    engine, _ = open_engine(args.model, dtype=args.dtype, device=args.device,
                            batch_size=args.batch_size)  # fmt: skip
    seeds = [args.seed_offset + i for i in range(args.episodes)]
    try:
        result = evaluate_policy(engine, env, seeds, args.max_new_tokens, args.batch_size)
    finally:
        engine.close()
    run_dir = new_run_dir(args.output_dir, "eval-env")
    write_json(run_dir / "eval.json", {"model": args.model, "env": args.id,
                                       "options": args.options, "metrics": result.metrics,
                                       "episodes": result.episodes})  # fmt: skip
    print(f"{args.model} on {args.id} ({args.episodes} held-out episodes, greedy)")
    shown = {key for _, key, _ in EVAL_ROWS}
    for label, key, fmt in EVAL_ROWS:
        if key in result.metrics:
            print(f"  {label:24}{fmt.format(result.metrics[key]):>10}")
    for key, value in result.metrics.items():
        if key not in shown:
            print(f"  {key.replace('_', ' '):24}{value:>10.3f}")
    print(f"episodes: {run_dir / 'eval.json'}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Register ``eval math``; returns the ``eval`` subcommands, for other families' suites."""
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
    env_eval = evaluate.add_parser(
        "env", help="valid rate, reward among valid answers and chance on a single-turn env"
    )
    env_eval.add_argument("id", help="env id (assay envs list)")
    env_eval.add_argument("options", nargs="*", metavar="option=value", help="env options")
    env_eval.add_argument(
        "--model", default="smollm2-135m-instruct", help="model name, folder, or a run directory"
    )
    env_eval.add_argument("--episodes", type=count, default=200, help="held-out episodes")
    env_eval.add_argument("--seed-offset", type=int, default=1_000_000_000)
    env_eval.add_argument("--max-new-tokens", type=token_budget, default=64)
    env_eval.add_argument("--batch-size", type=count, default=32)
    env_eval.add_argument("--dtype", default="float32")
    env_eval.add_argument("--device", default="cpu")
    env_eval.add_argument("--output-dir", type=Path, default=Path("runs"))
    env_eval.set_defaults(func=_eval_env)
    return evaluate

"""``assay rm data``, ``assay rm train`` and ``assay eval rerank``: the reward-model loop.

    assay rm data --policy smollm2-135m-instruct --env math-gsm8k-v0 --problems 200 --samples 8 \\
        --labels arith,mc --out runs/rm-data
    assay rm train --kind orm --data runs/rm-data/orm --out runs/orm
    assay rm train --kind prm --data runs/rm-data/prm_mc --out runs/prm
    assay rm train --kind prm --num-labels 3 --data prm800k:sample --out runs/prm3
    assay eval rerank --policy smollm2-135m-instruct --orm runs/orm --prm runs/prm --n 64
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from assay.errors import AssayError


def _engine(args: argparse.Namespace):
    """The policy's generation engine: one HF or vLLM engine, or a Ray pool of ``--replicas``."""
    from trainers.engines.factory import open_engine

    return open_engine(
        args.policy,
        backend=args.backend,
        replicas=args.replicas,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size * args.samples,
        address=args.ray_address,
    )


def _math_env(args: argparse.Namespace, split: str):
    import envs

    if not args.env.startswith("math-"):
        raise AssayError(
            f"Reward-model data and reranking need a math env (math-...), got {args.env!r}."
        )
    return envs.make(args.env, split=split, few_shot=args.few_shot)


def _sampling(args: argparse.Namespace):
    from trainers.engines.base import Sampling

    if args.samples < 1 or args.problems < 1:
        raise AssayError(
            f"--problems and --samples must be >= 1, got {args.problems}, {args.samples}."
        )
    return Sampling(
        n=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        logprobs=False,
    )


def rm_data(args: argparse.Namespace) -> int:
    from trainers.rm_data import generate_rm_data

    env = _math_env(args, args.split)
    sampling = _sampling(args)
    engine, tokenizer = _engine(args)
    labels = [s for s in args.labels.split(",") if s]
    try:
        paths = generate_rm_data(
            engine, tokenizer, env, args.out, problems=args.problems, sampling=sampling,
            labels=labels, mc_rollouts=args.mc_rollouts, split=args.step_split,
            batch_size=args.batch_size, mc_limit=args.mc_limit,
            include_reference=args.include_reference,
        )  # fmt: skip
    finally:
        engine.close()
    import datasets

    orm = datasets.load_from_disk(str(paths["orm"]))
    print(f"{len(orm)} solutions to {args.problems} problems, {sum(orm['correct'])} correct")
    for name, path in paths.items():
        print(f"{name:10} datasets.load_from_disk({str(path)!r})")
    return 0


def _split_by_problem(rows: list[dict], holdout: float, seed: int) -> tuple[list, list]:
    problems = sorted({r["problem"] for r in rows})
    random.Random(seed).shuffle(problems)
    held = set(problems[: int(round(holdout * len(problems)))])
    return [r for r in rows if r["problem"] not in held], [r for r in rows if r["problem"] in held]


def _step_split(args: argparse.Namespace) -> str:
    """The splitter the data was made with (``rm_data.json`` beside it), which the PRM must
    score with; an explicit ``--step-split`` that disagrees is refused."""
    made = Path(args.data).parent / "rm_data.json"
    recorded = json.loads(made.read_text()).get("step_split") if made.exists() else None
    if recorded and args.step_split and args.step_split != recorded:
        raise AssayError(
            f"{args.data} was split into steps with {recorded!r}; a PRM trained on it must score "
            f"with the same splitter, not --step-split {args.step_split}."
        )
    return args.step_split or recorded or "newline"


def rm_train(args: argparse.Namespace) -> int:
    from assay.runs import write_json
    from rewards.rm import OutcomeRewardModel, ProcessRewardModel, RMFormat, load_prm_rows
    from trainers.rm import (
        RMTrainConfig,
        orm_ranking_accuracy,
        prm_step_accuracy,
        train_orm,
        train_prm,
    )

    rows = load_prm_rows(args.data)  # also reads any saved `datasets` folder (orm/)
    if args.kind == "orm" and rows and "solution" not in rows[0]:
        raise AssayError(
            f"{args.data} holds step labels; an ORM trains on (problem, solution, correct) rows."
        )
    if args.kind == "prm" and rows and "steps" not in rows[0]:
        raise AssayError(
            f"{args.data} holds whole solutions; a PRM trains on (problem, steps, labels) rows."
        )
    split = _step_split(args)
    train_rows, held_rows = _split_by_problem(rows, args.holdout, args.seed)
    config = RMTrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    fmt = RMFormat(split=split, max_length=args.max_length)
    if args.kind == "orm":
        model = OutcomeRewardModel.from_backbone(
            args.backbone, fmt, seed=args.seed, device=args.device
        )
        before = orm_ranking_accuracy(model, held_rows)
        history = train_orm(model, train_rows, config, loss=args.loss)
        after = orm_ranking_accuracy(model, held_rows)
        metric = "held-out pair ranking accuracy"
    else:
        model = ProcessRewardModel.from_backbone(
            args.backbone, fmt, num_labels=args.num_labels, seed=args.seed, device=args.device
        )
        before = prm_step_accuracy(model, held_rows)
        history = train_prm(model, train_rows, config, label_key=args.label_field)
        after = prm_step_accuracy(model, held_rows)
        metric = "held-out step accuracy"
    model.save(args.out)
    summary = {
        "kind": args.kind, "data": args.data, "backbone": args.backbone, "loss": args.loss,
        "train_rows": len(train_rows), "heldout_rows": len(held_rows), "history": history,
        "heldout_before": before, "heldout_after": after, "metric": metric,
    }  # fmt: skip
    write_json(Path(args.out) / "train_summary.json", summary)
    print(
        f"{args.kind.upper()} on {len(train_rows)} rows: loss {history[0]:.4f} -> {history[-1]:.4f}"
    )
    if before is not None:
        print(f"{metric} ({len(held_rows)} rows): {before:.3f} -> {after:.3f}")
    print(f"saved to {args.out} (rewards.rm.load_reward_model)")
    return 0


def eval_rerank(args: argparse.Namespace) -> int:
    from assay.runs import new_run_dir, write_json
    from rewards.rm import load_reward_model
    from trainers.math_eval import evaluate_math
    from trainers.rerank import best_of_n, format_table, plot_best_of_n, score_samples

    if args.orm is None and args.prm is None:
        print("no --orm or --prm: reporting oracle and majority vote only")
    orm = load_reward_model(args.orm, args.device) if args.orm else None
    prm = load_reward_model(args.prm, args.device) if args.prm else None
    for given, model, kind in ((args.orm, orm, "orm"), (args.prm, prm, "prm")):
        if model is not None and model.kind != kind:
            raise AssayError(
                f"--{kind} {given} is a saved {model.kind.upper()}, not a {kind.upper()}."
            )
    run_dir = new_run_dir(args.output_dir, "rerank")
    env = _math_env(args, "test")
    if args.samples_from:
        samples_path = Path(args.samples_from)
    else:
        samples_path = run_dir / "samples.jsonl"
        engine, _ = _engine(args)
        try:
            evaluate_math(
                engine, env, args.problems, _sampling(args), samples_path, args.batch_size
            )
        finally:
            engine.close()
    problems = _problems_from_samples(samples_path, env)
    aggregations = [a for a in args.aggregations.split(",") if a]
    scorers = score_samples(problems, orm, prm, aggregations)
    write_json(run_dir / "scores.json", scorers)
    rows = best_of_n(problems, scorers, subsets=args.subsets, seed=args.seed)
    title = f"{args.policy} on {args.env} (test, {len(problems)} problems)"
    write_json(run_dir / "rerank.json", {"title": title, "rows": rows})
    table = format_table(rows)
    (run_dir / "rerank.md").write_text(f"{title}\n\n{table}\n")
    plot_best_of_n(rows, run_dir / "plots" / "best_of_n.png", title)
    print(title)
    print(table)
    print(f"table, plot and scores: {run_dir}")
    return 0


def _problems_from_samples(path: Path, env) -> list[dict]:
    """Per-problem samples (``evaluate_math``'s samples.jsonl), with the problem text."""
    by_index: dict[int, list[dict]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        by_index.setdefault(row["index"], []).append(row)
    sizes = {len(v) for v in by_index.values()}
    if len(sizes) != 1:
        raise AssayError(
            f"{path} has problems with different numbers of samples ({sorted(sizes)})."
        )
    return [
        {
            "problem": env.problems[i].question,
            "solutions": [r["output"] for r in rows],
            "correct": [bool(r["correct"]) for r in rows],
            "answers": [r["answer_norm"] if r["answer"] is not None else None for r in rows],
        }
        for i, rows in sorted(by_index.items())
    ]


def _policy_args(p: argparse.ArgumentParser, problems: int, samples: int) -> None:
    p.add_argument("--policy", default="smollm2-135m-instruct", help="model that samples solutions")
    p.add_argument("--env", default="math-gsm8k-v0", help="math env id")
    p.add_argument("--problems", type=int, default=problems, help="first N problems of the split")
    p.add_argument("--samples", type=int, default=samples, help="solutions sampled per problem")
    p.add_argument("--few-shot", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8, help="problems per generate call")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="policy engines")
    p.add_argument("--replicas", type=int, default=1, help="policy engines on a Ray pool if > 1")
    p.add_argument(
        "--ray-address",
        help="Ray cluster for the pool (default: RAY_ADDRESS, else what ray.init() finds)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")


def _add_data(rm: argparse._SubParsersAction) -> None:
    data = rm.add_parser("data", help="sample, grade and step-label solutions (resumable)")
    _policy_args(data, problems=100, samples=8)
    data.add_argument("--split", default="train", help="split to sample problems from")
    data.add_argument("--labels", default="arith", help="step labels: arith, mc (comma-separated)")
    data.add_argument("--mc-rollouts", type=int, default=8, help="continuations per step (mc)")
    data.add_argument("--include-reference", action="store_true",
                      help="add each problem's reference solution as a correct row")  # fmt: skip
    data.add_argument("--mc-limit", type=int, help="MC-label only the first N solutions")
    data.add_argument(
        "--step-split", default="newline", help="newline, paragraph, step_k, sentence"
    )
    data.add_argument("--out", type=Path, required=True, help="output folder")
    data.set_defaults(func=rm_data)


def _add_train(rm: argparse._SubParsersAction) -> None:
    train = rm.add_parser("train", help="train an ORM or a PRM")
    train.add_argument("--kind", choices=("orm", "prm"), required=True)
    train.add_argument(
        "--data", required=True,
        help="a folder from `assay rm data` (orm, prm_arith, prm_mc), or prm800k:PATH|sample|hub, "
        "math-shepherd:PATH|sample|hub",
    )  # fmt: skip
    train.add_argument(
        "--backbone", default="smollm2-135m-instruct", help="causal LM to start from"
    )
    train.add_argument("--loss", choices=("classification", "pairwise"), default="classification",
                       help="ORM loss (pairwise: Bradley-Terry through TRL's RewardTrainer)")  # fmt: skip
    train.add_argument("--num-labels", type=int, choices=(2, 3), default=2, help="PRM classes")
    train.add_argument(
        "--step-split", help="step splitter the PRM scores with (default: the data's, or newline)"
    )
    train.add_argument("--label-field", default="labels",
                       help="PRM targets: labels (soft MC / arithmetic / human) or hard_labels")  # fmt: skip
    train.add_argument("--max-length", type=int, default=1024)
    train.add_argument("--epochs", type=int, default=2)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=2e-5)
    train.add_argument("--holdout", type=float, default=0.1, help="fraction of problems held out")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu")
    train.add_argument("--out", type=Path, required=True)
    train.set_defaults(func=rm_train)


def _add_rerank(evaluate: argparse._SubParsersAction) -> None:
    rerank = evaluate.add_parser(
        "rerank", help="best-of-N: oracle, majority, ORM, PRM (x aggregation)"
    )
    _policy_args(rerank, problems=50, samples=16)
    rerank.add_argument(
        "--n", dest="samples", type=int, default=argparse.SUPPRESS, help="same as --samples"
    )
    rerank.add_argument("--orm", help="a saved ORM (assay rm train --kind orm)")
    rerank.add_argument("--prm", help="a saved PRM (assay rm train --kind prm)")
    rerank.add_argument("--aggregations", default="min,prod,mean,last,max,geomean")
    rerank.add_argument("--samples-from", help="reuse a samples.jsonl of an earlier rerank or eval")
    rerank.add_argument("--subsets", type=int, default=200, help="random subsets per N for votes")
    rerank.add_argument("--output-dir", type=Path, default=Path("runs"))
    rerank.set_defaults(func=eval_rerank)


def add_parsers(sub: argparse._SubParsersAction, evaluate: argparse._SubParsersAction) -> None:
    """Register ``rm data``, ``rm train`` (under ``sub``) and ``eval rerank`` (under ``evaluate``)."""
    rm = sub.add_parser("rm", help="reward models: data, training").add_subparsers(
        dest="rm_job", required=True
    )
    _add_data(rm)
    _add_train(rm)
    _add_rerank(evaluate)

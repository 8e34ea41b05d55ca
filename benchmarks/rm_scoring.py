"""Reward-model throughput: assay's batched ORM/PRM scoring against the one-at-a-time peers,
and reward-model data generation through one engine and through the Ray rollout pool.

    python benchmarks/rm_scoring.py [--solutions 64] [--backbone smollm2-135m-instruct]

- ORM: ``OutcomeRewardModel.score_many`` (length-sorted batches, 4 on a CPU) vs transformers'
  ``pipeline("text-classification")`` on the same model and the same templated text, one
  solution per call (how an ORM is usually applied in a best-of-N loop).
- PRM: ``ProcessRewardModel.score_solutions`` (every step of a solution read from one forward
  pass, batched) vs the same model called once per solution (batch size 1).
- Data generation: ``trainers.rm_data.sample_solutions`` (sample + grade) on 8 GSM8K train
  problems x 4 samples x 64 new tokens with one HF engine, then a 2-replica ``EnginePool``.

Solutions are GSM8K reference solutions (calculator annotations removed), so lengths are real;
the heads are untrained (throughput does not depend on their weights). Ends with a RESULT line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _solutions(n: int) -> list[tuple[str, str]]:
    from envs.math.data import load_problems, strip_calculator

    problems = load_problems("gsm8k", "test")[:n]
    return [
        (p.question, strip_calculator(p.solution) + f"\nThe answer is {p.answer}.")
        for p in problems
    ]


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def bench_orm(backbone: str, pairs) -> dict[str, float]:
    from transformers import pipeline

    from rewards.rm import OutcomeRewardModel

    orm = OutcomeRewardModel.from_backbone(backbone)
    orm.score_many(pairs[:2])  # warm-up
    ours, t_ours = _timed(orm.score_many, pairs)
    texts = [orm.tokenizer.decode(orm.encode(p, s)) for p, s in pairs]
    clf = pipeline("text-classification", model=orm.model, tokenizer=orm.tokenizer, device="cpu")
    clf(texts[:2], function_to_apply="sigmoid")
    start = time.perf_counter()
    theirs = [clf(t, function_to_apply="sigmoid")[0]["score"] for t in texts]
    t_peer = time.perf_counter() - start
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"ORM  assay batched {len(pairs) / t_ours:7.1f} solutions/s | "
          f"pipeline one at a time {len(pairs) / t_peer:7.1f}/s | max score gap {gap:.1e}")  # fmt: skip
    return {"orm_per_s": len(pairs) / t_ours, "orm_peer_per_s": len(pairs) / t_peer, "orm_gap": gap}


def bench_prm(backbone: str, pairs) -> dict[str, float]:
    from rewards.rm import ProcessRewardModel

    prm = ProcessRewardModel.from_backbone(backbone)
    prm.score_solutions(pairs[:2])
    ours, t_ours = _timed(prm.score_solutions, pairs)
    prm.batch_size = 1
    theirs, t_single = _timed(lambda: [prm.score_solutions([p])[0] for p in pairs])
    gap = max(
        abs(a - b) for x, y in zip(ours, theirs, strict=True) for a, b in zip(x, y, strict=True)
    )
    steps = sum(len(s) for s in ours)
    print(f"PRM  assay batched {len(pairs) / t_ours:7.1f} solutions/s ({steps / t_ours:.0f} steps/s) | "
          f"one solution per call {len(pairs) / t_single:7.1f}/s | max score gap {gap:.1e}")  # fmt: skip
    return {"prm_per_s": len(pairs) / t_ours, "prm_single_per_s": len(pairs) / t_single}


def bench_data(policy: str) -> dict[str, float]:
    import envs
    from assay.models import load_causal_lm
    from trainers.engines.base import Sampling
    from trainers.engines.hf import HFEngine
    from trainers.engines.pool import EnginePool, EngineSpec
    from trainers.rm_data import sample_solutions

    env = envs.make("math-gsm8k-v0", split="train")
    sampling = Sampling(n=4, temperature=0.7, max_new_tokens=64, seed=0, logprobs=False)
    model, tokenizer = load_causal_lm(policy)
    engines = {"hf": lambda: HFEngine(model, tokenizer),
               "pool2": lambda: EnginePool(EngineSpec(policy), replicas=2)}  # fmt: skip
    out = {}
    for name, make in engines.items():
        engine = make()
        engine.generate([env.reset(options={"index": 0})[0]], Sampling(max_new_tokens=2))  # warm
        with tempfile.TemporaryDirectory() as tmp:
            rows, seconds = _timed(sample_solutions, engine, env, Path(tmp), 8, sampling, 8)
        engine.close()
        out[f"data_{name}_per_s"] = len(rows) / seconds
        print(
            f"data {name:5} {len(rows) / seconds:6.2f} graded solutions/s ({len(rows)} in {seconds:.1f} s)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", type=int, default=64)
    parser.add_argument("--backbone", default="smollm2-135m-instruct")
    parser.add_argument("--skip-data", action="store_true", help="only the scoring benchmarks")
    args = parser.parse_args()
    torch.manual_seed(0)
    pairs = _solutions(args.solutions)
    result = {**bench_orm(args.backbone, pairs), **bench_prm(args.backbone, pairs)}
    if not args.skip_data:
        result.update(bench_data(args.backbone))
    result["orm_ratio"] = result["orm_per_s"] / result["orm_peer_per_s"]
    result["prm_ratio"] = result["prm_per_s"] / result["prm_single_per_s"]
    print("RESULT " + " ".join(f"{k}={v:.4g}" for k, v in result.items()))


if __name__ == "__main__":
    main()

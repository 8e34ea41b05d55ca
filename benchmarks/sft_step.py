"""SFT tokens/s: ``assay train sft`` (its job, on TRL's SFTTrainer) vs TRL's SFTTrainer on the
same conversations, model, batch and steps, in one run.

    python benchmarks/sft_step.py [--model smollm2-135m-instruct] [--steps 12] [--batch 8]

The data are Codenames-guess conversations taught by the env (``TextEnv.demonstration``), the
main job's boards. assay gets them as a JSONL of ``messages`` and encodes them token-exactly
(:mod:`trainers.sft`); TRL gets the same conversations as conversational ``prompt`` +
``completion`` rows and tokenizes them with its own chat-template path (loss on the
completion only). Both train ``--steps`` optimizer steps of ``--batch`` rows, fp32 without
activation checkpointing (TRL's own defaults on a CPU are bf16 autocast and checkpointing;
assay sets both from its config), the same learning rate, no evaluation, no checkpoint inside the timed part; both times are TRL's own
``train_runtime`` (the training loop only: model loading, data encoding and saving excluded).
tokens/s counts every token of the rows trained on. Ends with ``RESULT assay_tok_s=...
trl_tok_s=... ratio=...`` (goal: ratio >= 1.0, and >= 0.95 since assay wraps TRL).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from assay.runs import write_jsonl
from trainers.sft import teacher_conversations
from trainers.sft_job import SFTConfig, run_sft

ENV_KWARGS = {"n_targets": [2, 3], "n_non_targets": [2, 3]}
LR = 1e-5


def conversations(n: int) -> list[dict]:
    env = envs.make("codenames-guess-v0", **ENV_KWARGS)
    return teacher_conversations(env, list(range(n)))[0]


def time_assay(model: str, data: Path, steps: int, batch: int, out: Path) -> tuple[float, int]:
    config = load_config(SFTConfig, overrides=[
        f"model.name={model}", f"data.train={data}", "data.eval_fraction=0",
        f"train.max_steps={steps}", f"train.batch_size={batch}", f"optim.lr={LR}",
        "optim.schedule=constant", f"train.checkpoint_every={10 * steps}",
        f"train.output_dir={out}", "train.run_name=assay", "eval.episodes=0"])  # fmt: skip
    run_sft(config, log=lambda *_: None)
    records = [json.loads(line) for line in (out / "assay" / "metrics.jsonl").open()]
    runtime = next(r["train_runtime"] for r in records if "train_runtime" in r)
    from trainers.sft import load_rows

    tokenizer = load_causal_lm(model)[1]
    lengths = [len(r["input_ids"]) for r in load_rows(data, tokenizer)]
    return runtime, _tokens(lengths, steps, batch)


def time_trl(model: str, rows: list[dict], steps: int, batch: int, out: Path) -> tuple[float, int]:
    from datasets import Dataset
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    policy, tokenizer = load_causal_lm(model)
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                              for r in rows])  # fmt: skip
    args = TRLConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=LR, lr_scheduler_type="constant", logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, max_length=1024, packing=False, seed=0, data_seed=0,
        bf16=False, gradient_checkpointing=False,  # as assay's defaults (TRL's: on, on a CPU)
    )  # fmt: skip
    trainer = SFTTrainer(model=policy, processing_class=tokenizer, args=args, train_dataset=data)
    result = trainer.train()
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    return result.metrics["train_runtime"], _tokens(lengths, steps, batch)


def _tokens(lengths: list[int], steps: int, batch: int) -> int:
    """Tokens of the rows the first ``steps`` batches hold (the dataset cycles by epochs; the
    mean row length stands for a shuffled batch)."""
    return round(sum(lengths) / len(lengths) * steps * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=128)
    args = parser.parse_args()
    rows = conversations(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_jsonl(out / "data.jsonl", rows)
        assay_s, assay_tokens = time_assay(args.model, out / "data.jsonl", args.steps,
                                           args.batch, out)  # fmt: skip
        trl_s, trl_tokens = time_trl(args.model, rows, args.steps, args.batch, out)
    assay_rate, trl_rate = assay_tokens / assay_s, trl_tokens / trl_s
    print(f"assay train sft: {args.steps} steps x {args.batch} rows, {assay_tokens} tokens in "
          f"{assay_s:.1f} s = {assay_rate:.0f} tok/s")  # fmt: skip
    print(f"TRL SFTTrainer:  {args.steps} steps x {args.batch} rows, {trl_tokens} tokens in "
          f"{trl_s:.1f} s = {trl_rate:.0f} tok/s")  # fmt: skip
    print(f"RESULT assay_tok_s={assay_rate:.1f} trl_tok_s={trl_rate:.1f} "
          f"ratio={assay_rate / trl_rate:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Pretraining throughput against transformers' ``Trainer``, and optimizer-state memory of every
low-rank method against full-rank AdamW on the 60M config.

    python benchmarks/pretrain.py [--size llama-10m] [--steps 30] [--memory-size llama-60m]

1. Throughput: the same LLaMA (``--size``, seed 0), the same packed WikiText-2 windows
   (128 tokens, 16 windows per step), AdamW with the same LR schedule, fp32 on the CPU (bf16
   autocast on a GPU for both): ``assay pretrain`` (``run_pretrain``, exposure logging and a final
   checkpoint included) vs ``transformers.Trainer`` on a ``datasets`` copy of the windows.
   Tokens/s is the median over steps after the first 5 (both sides timed per optimizer step).
2. Memory: for each method, one optimizer step on the ``--memory-size`` model (vocabulary 32000,
   as in the ReLoRA/GaLore papers), then the bytes held in the optimizer state (measured) next to
   the formula (theory), and the trainable share of the parameters.

Ends with a RESULT line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _config(size: str, steps: int, out: Path, method: str = "full"):
    from assay.config import load_config
    from pretraining.config import PretrainConfig, expand_short

    overrides = [
        f"size={size}",
        f"max_steps={steps}",
        f"method={method}",
        "optim.warmup_steps=5",
        "data.eval_corpus=null",
        f"train.checkpoint_every={steps}",
        f"train.output_dir={out}",
        f"train.run_name={method}-{size}",
    ]
    root = Path(__file__).parents[1]
    return load_config(
        PretrainConfig, root / "configs" / "pretrain_tiny.yaml", expand_short(overrides)
    )


def assay_tokens_per_s(config) -> float:
    from pretraining.trainer import run_pretrain

    run_dir = run_pretrain(config)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["tokens_per_s"] for r in rows[5:])


def hf_tokens_per_s(config, out: Path) -> float:
    import datasets
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from pretraining.corpus import prepare_corpus
    from pretraining.trainer import build

    corpus = prepare_corpus(config, out / "data")
    model, _ = build(config, len(corpus.tokenizer))
    ids = corpus.train.windows.astype("int64").tolist()
    rows = datasets.Dataset.from_dict({"input_ids": ids, "labels": ids})
    t = config.train
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.began)

    args = TrainingArguments(
        output_dir=str(out / "hf"),
        per_device_train_batch_size=t.batch_size,
        max_steps=t.max_steps,
        learning_rate=config.optim.lr,
        warmup_steps=config.optim.warmup_steps,
        lr_scheduler_type="cosine",
        adam_beta1=config.optim.betas[0],
        adam_beta2=config.optim.betas[1],
        max_grad_norm=config.optim.grad_clip,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[Clock()]).train()
    return t.batch_size * config.model.seq_len / statistics.median(times[5:])


def _theory_bytes(model, method: str, config) -> int:
    """Adam keeps two fp32 moments per trainable entry; GaLore/Fira keep them in the projected
    space (r x max(m, n)) plus the projector (min(m, n) x r) for each projected matrix."""
    from pretraining.methods import TARGETS

    if method not in ("galore", "fira"):
        return 8 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    r = config.method.galore.rank
    total = 0
    projected = set()
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and path.rsplit(".", 1)[-1] in TARGETS:
            m, n = module.weight.shape
            total += 4 * (2 * r * max(m, n) + r * min(m, n))
            projected.add(id(module.weight))
    rest = sum(p.numel() for p in model.parameters() if id(p) not in projected)
    return total + 8 * rest


def memory_table(size: str, out: Path) -> list[dict]:
    from pretraining.methods import optimizer_state_bytes
    from pretraining.trainer import build, lm_loss

    rows = []
    for method in ("full", "relora", "galore", "fira", "cola", "sltrain"):
        config = _config(size, 10, out, method)
        config.method.relora.rank = config.method.galore.rank = 128  # the papers' 60M setting
        config.method.cola.rank = config.method.sltrain.rank = 128
        model, m = build(config, 32000)
        batch = torch.randint(0, 32000, (1, 64))
        lm_loss(model, batch).backward()
        m.optimizer.step()
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append(
            {
                "method": method,
                "params_m": total / 1e6,
                "trainable_share": trainable / total,
                "state_mb": optimizer_state_bytes(m.optimizer) / 2**20,
                "theory_mb": _theory_bytes(model, method, config) / 2**20,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="llama-10m")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--memory-size", default="llama-60m")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config = _config(args.size, args.steps, out)
        assay = assay_tokens_per_s(config)
        hf = hf_tokens_per_s(config, out)
        print(
            f"{args.size}, 16 x 128 tokens/step: assay {assay:,.0f} tok/s, HF Trainer {hf:,.0f} tok/s"
        )
        rows = memory_table(args.memory_size, out)
    print(f"\n{args.memory_size} (vocab 32000, rank 128): optimizer state after one step")
    print(f"{'method':9}{'params M':>10}{'trainable':>11}{'state MB':>10}{'theory MB':>11}")
    for r in rows:
        print(f"{r['method']:9}{r['params_m']:>10.1f}{r['trainable_share']:>11.1%}"
              f"{r['state_mb']:>10.1f}{r['theory_mb']:>11.1f}")  # fmt: skip
    state = " ".join(f"{r['method']}_state_mb={r['state_mb']:.1f}" for r in rows)
    print(
        f"RESULT assay_tok_s={assay:.0f} hf_trainer_tok_s={hf:.0f} ratio={assay / hf:.2f} {state}"
    )


if __name__ == "__main__":
    main()

"""The SFT job: ``assay train sft --config configs/sft_codenames_teacher.yaml [key=value ...]``.

Encodes the data (:mod:`trainers.sft`), trains with TRL's ``SFTTrainer`` on the assistant tokens
only, and writes a run directory like the RL job's: ``config.yaml``, ``metrics.jsonl`` (every
logged step: loss, learning rate, grad norm, held-out loss), ``plots/training.png``,
``checkpoints/`` (TRL's, for ``--resume``), ``final/`` (a plain Hugging Face folder, LoRA
merged, that ``assay train rl model.name=RUN_DIR/final`` starts from) and ``summary.json``
(held-out loss before and after, rows and trained tokens).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from trainers.rl.model_config import LoraConfig, ModelConfig


@dataclass
class SFTDataConfig:
    train: str = ""
    """JSONL or parquet of chat ``messages``, a ``datasets`` folder, or an ``assay rollout``
    output folder (its token-exact contexts)."""
    env: str | None = None
    """An env that teaches (``TextEnv.demonstration``): its own answers on ``episodes``
    episodes (seeds ``seed_offset + i``) become the data, saved as ``data/teacher.jsonl`` in
    the run. With ``train`` too, both are used."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 256
    seed_offset: int = 0
    """Teacher episodes use seeds ``seed_offset + i``; evaluations (``eval.seed_offset``,
    10**9 and up) never see them."""
    eval: str | None = None
    """Held-out data in the same forms; default: ``eval_fraction`` of ``train``."""
    eval_fraction: float = 0.1
    min_reward: float | None = None
    """Rollout datasets: keep only contexts whose reward is at least this."""
    max_length: int = 1024
    """Tokens per row; longer rows are cut at the end."""

    def problems(self) -> list[str]:
        out = []
        if not (self.train or self.env):
            out.append("name the training data: train (a file or folder) or env (a teacher env)")
        if self.episodes < 1:
            out.append(f"episodes must be >= 1, got {self.episodes}")
        if not (self.seed_offset >= 0 and self.seed_offset + self.episodes <= 1_000_000_000):
            out.append("seed_offset + episodes must stay in [0, 10**9) (eval seeds are above)")
        if not 0 <= self.eval_fraction < 1:
            out.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.max_length < 2:
            out.append(f"max_length must be >= 2, got {self.max_length}")
        return out


@dataclass
class SFTOptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    """Share of the steps spent warming up (transformers reads a fraction below 1 as a ratio)."""
    schedule: str = "cosine"
    """Any transformers ``lr_scheduler_type`` (``cosine``, ``linear``, ``constant``...)."""
    max_grad_norm: float = 1.0


@dataclass
class SFTTrainConfig:
    epochs: float = 1.0
    max_steps: int = -1
    """Optimizer steps; -1: as many as ``epochs`` take."""
    batch_size: int = 8
    grad_accum: int = 1
    eval_every: int = 50
    checkpoint_every: int = 50
    keep_checkpoints: int = 1
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None

    def problems(self) -> list[str]:
        names = ("batch_size", "grad_accum", "eval_every", "checkpoint_every", "keep_checkpoints")
        return [f"{n} must be >= 1, got {getattr(self, n)}" for n in names if getattr(self, n) < 1]


@dataclass
class PolicyEvalConfig:
    """Held-out greedy episodes of an env before and after fine-tuning: reward, valid rate,
    reward among valid answers and, where the env has one, the chance baseline."""

    env: str | None = None
    """The env to evaluate on; default: the teacher env (``data.env``)."""
    env_kwargs: dict[str, Any] | None = None
    """Its options; default: the teacher env's."""
    episodes: int = 50
    """Held-out episodes (0: none); seeds ``seed_offset + i``."""
    seed_offset: int = 1_000_000_000
    batch_size: int = 16
    max_new_tokens: int = 64

    def run(self, engine, env_id: str | None, env_kwargs: dict, path: Path, label: str) -> dict:
        """Greedy held-out episodes of ``engine`` on this section's env (default: ``env_id``
        with ``env_kwargs``), written to ``path``; returns the metrics."""
        import envs
        from assay.runs import write_json
        from trainers.evaluate import evaluate_policy

        kwargs = self.env_kwargs
        if kwargs is None:
            kwargs = env_kwargs if (self.env or env_id) == env_id else {}
        seeds = [self.seed_offset + i for i in range(self.episodes)]
        result = evaluate_policy(engine, envs.make(self.env or env_id, **kwargs), seeds,
                                 self.max_new_tokens, self.batch_size, desc=f"eval {label}")  # fmt: skip
        write_json(path, {"metrics": result.metrics, "episodes": result.episodes})
        return result.metrics

    def problems(self) -> list[str]:
        out = [] if self.episodes >= 0 else [f"episodes must be >= 0, got {self.episodes}"]
        if self.seed_offset < 1_000_000_000:
            out.append(f"seed_offset must be >= 10**9 (training seeds stay below), got "
                       f"{self.seed_offset}")  # fmt: skip
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        return out


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    optim: SFTOptimConfig = field(default_factory=SFTOptimConfig)
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    eval: PolicyEvalConfig = field(default_factory=PolicyEvalConfig)


def run_sft(config: SFTConfig, resume_dir: Path | None = None, log=print) -> dict[str, Any]:
    """Train (or resume) an SFT run; returns its summary."""
    from datasets import Dataset
    from trl import SFTTrainer

    from assay.config import dump_yaml
    from assay.distributed import resolve_device
    from assay.models import load_causal_lm
    from assay.runs import new_run_dir, write_json

    device = resolve_device(config.model.device)
    model, tokenizer = load_causal_lm(config.model.name, config.model.dtype, str(device))
    run_dir = resume_dir or new_run_dir(config.train.output_dir, "sft", config.train.run_name)
    dump_yaml(config, run_dir / "config.yaml")
    log(f"Run directory: {run_dir}")
    train_rows, eval_rows = _split(config, tokenizer, run_dir, log)
    resume = resume_dir is not None and any((run_dir / "checkpoints").glob("checkpoint-*"))
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        args=_trl_args(config, run_dir, device, bool(eval_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        peft_config=_peft(config.lora),
        callbacks=[_metrics_callback(run_dir, resume)],
    )
    before = trainer.evaluate()["eval_loss"] if eval_rows and not resume else None
    episodes_before = _policy_eval(config, model, tokenizer, run_dir, "base")
    trainer.train(resume_from_checkpoint=True if resume else None)
    after = trainer.evaluate()["eval_loss"] if eval_rows else None
    final = _save_final(trainer.model, tokenizer, run_dir / "final")
    _plot(run_dir)
    episodes_after = _policy_eval(config, final, tokenizer, run_dir, "trained")
    summary = {
        "run_dir": str(run_dir), "steps": trainer.state.global_step,
        "rows": len(train_rows), "eval_rows": len(eval_rows),
        "trained_tokens_per_epoch": sum(sum(r["assistant_masks"]) for r in train_rows),
        "eval_loss_before": before, "eval_loss_after": after, "final": str(run_dir / "final"),
        "eval_base": episodes_before, "eval_trained": episodes_after,
    }  # fmt: skip
    write_json(run_dir / "summary.json", summary)
    if after is not None:
        log(
            f"Held-out loss (assistant tokens): {before if before is not None else '-'} -> {after:.4f}"
        )
    if episodes_after is not None:
        from trainers.rl.evaluation import format_eval_table

        log(format_eval_table(episodes_before, episodes_after, config.eval.episodes))
    log(f"Final model: {run_dir / 'final'} (assay train rl model.name={run_dir})")
    return summary


def _policy_eval(config: SFTConfig, model, tokenizer, run_dir: Path, label: str):
    """Metrics of greedy held-out episodes (``eval_<label>.json``), or None without an env; a
    resumed run keeps the base evaluation it made before."""
    import json

    env_id = config.eval.env or config.data.env
    if not (env_id and config.eval.episodes):
        return None
    saved = run_dir / f"eval_{label}.json"
    if label == "base" and saved.exists():
        return json.loads(saved.read_text())["metrics"]
    from trainers.engines.hf import HFEngine

    was_training = model.training
    engine = HFEngine(model.eval(), tokenizer, batch_size=config.eval.batch_size)
    metrics = config.eval.run(engine, config.data.env, config.data.env_kwargs, saved, label)
    model.train(was_training)
    return metrics


def _split(config: SFTConfig, tokenizer, run_dir: Path, log) -> tuple[list[dict], list[dict]]:
    from trainers.sft import load_rows

    data = config.data
    rows = load_rows(data.train, tokenizer, data.min_reward) if data.train else []
    if data.env:
        taught = teacher_data(data, run_dir / "data" / "teacher.jsonl", log)
        rows += load_rows(taught, tokenizer)
    if data.eval:
        return rows, load_rows(data.eval, tokenizer)
    order = list(range(len(rows)))
    random.Random(config.train.seed).shuffle(order)
    n_eval = int(len(rows) * data.eval_fraction)
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def teacher_data(data: SFTDataConfig, path: Path, log=print) -> Path:
    """Write the teacher env's conversations to ``path`` (JSONL; kept when it exists, so a
    resumed run trains on the same data) and return it."""
    if path.exists():
        return path
    import envs
    from assay.runs import write_jsonl
    from trainers.sft import teacher_conversations

    env = envs.make(data.env, **data.env_kwargs)
    seeds = [data.seed_offset + i for i in range(data.episodes)]
    records, dropped = teacher_conversations(env, seeds)
    if not records:
        raise ConfigError(
            f"{data.env} taught nothing on {len(seeds)} episodes ({dropped}); it needs a "
            "demonstration() that returns valid answers."
        )
    write_jsonl(path, records)
    log(f"Teacher {data.env}: {len(records)} conversations from {len(seeds)} episodes "
        f"(dropped: {dropped['no_demonstration']} without a demonstration, "
        f"{dropped['invalid']} invalid) -> {path}")  # fmt: skip
    return path


def _trl_args(config: SFTConfig, run_dir: Path, device, evaluate: bool):
    import torch
    from trl import SFTConfig as TRLConfig

    t, o = config.train, config.optim
    return TRLConfig(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=o.lr, weight_decay=o.weight_decay, warmup_steps=o.warmup_ratio,
        lr_scheduler_type=o.schedule, max_grad_norm=o.max_grad_norm, num_train_epochs=t.epochs,
        max_steps=t.max_steps, logging_steps=1, save_strategy="steps",
        save_steps=t.checkpoint_every, save_total_limit=t.keep_checkpoints,
        eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_every, seed=t.seed,
        data_seed=t.seed, report_to=[], use_cpu=device.type == "cpu",
        # TRL's defaults are bf16 autocast and activation checkpointing, even on a CPU: say
        # what the config says instead (fp32 unless model.dtype is bfloat16 on a GPU).
        bf16=config.model.dtype == "bfloat16" and torch.cuda.is_available(),
        gradient_checkpointing=config.model.gradient_checkpointing,
        max_length=config.data.max_length, packing=False, save_only_model=False,
    )  # fmt: skip


def _peft(lora: LoraConfig):
    if not lora.enabled:
        return None
    from peft import LoraConfig as PeftLora

    return PeftLora(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                    target_modules=list(lora.target_modules), task_type="CAUSAL_LM")  # fmt: skip


def _save_final(model, tokenizer, target: Path):
    """A plain transformers folder (LoRA merged in), written atomically; returns the model
    written."""
    from assay.checkpoints import save_to

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    save_to(target, 0, model, tokenizer, {})
    return model


def _plot(run_dir: Path) -> None:
    from assay.runs import MetricsLog, plot_metrics

    records = MetricsLog(run_dir / "metrics.jsonl").read()
    keys = [k for k in ("loss", "eval_loss", "learning_rate", "grad_norm")
            if any(k in r for r in records)]  # fmt: skip
    if records:
        plot_metrics(records, keys, run_dir / "plots" / "training.png", title="sft")


def _metrics_callback(run_dir: Path, resume: bool):
    """Every record TRL logs, with its step, appended to ``metrics.jsonl`` (a resumed run first
    drops the records after its checkpoint)."""
    from transformers import TrainerCallback

    from assay.runs import MetricsLog

    log = MetricsLog(run_dir / "metrics.jsonl")

    class Metrics(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if resume:
                log.truncate_after(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            record = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
            log.append({"step": state.global_step, **record})

    return Metrics()

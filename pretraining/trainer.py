"""The pretraining job: ``assay pretrain --config configs/pretrain_tiny.yaml [key=value ...]``.

One loop for every method (:mod:`pretraining.methods`): read the step's windows -> forward and
backward over micro-batches -> clip -> optimizer step -> method hook (ReLoRA resets) -> log
(metrics, exposure) -> evaluate -> checkpoint. Data-parallel over ``torchrun`` ranks with
PyTorch's ``DistributedDataParallel`` (gloo on a CPU, NCCL on GPUs), or sharded with FSDP2
(``train.sharding: fsdp``, :mod:`pretraining.sharded`): every rank reads its slice
of the same global window list, so 2 ranks read exactly what 1 rank with twice the accumulation
reads, and the exposure log is the same.

Run directory: ``config.yaml``, ``metrics.jsonl``, ``exposure.jsonl`` (windows per step),
``data/`` (packed windows, document offsets, corpus meta), ``tokenizer/``, ``checkpoints/``
(dense LLaMA weights that ``AutoModelForCausalLM`` loads, except CoLA; plus the exact training
state to resume), ``plots/training.png`` and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from assay.checkpoints import latest_checkpoint, load_trainer_state, save_checkpoint, save_to
from assay.config import dump_yaml, to_dict
from assay.distributed import World, all_sum, barrier, init_world, resolve_device
from assay.runs import MetricsLog, new_run_dir, plot_metrics, write_json
from assay.sharding import clip_gradients, is_sharded
from pretraining.config import PretrainConfig
from pretraining.corpus import Corpus, prepare_corpus
from pretraining.exposure import ExposureLog
from pretraining.methods import Method, optimizer_state_bytes, prepare_method
from pretraining.models import build_model, count_parameters, llama_config
from pretraining.packing import PackedData, step_windows
from pretraining.sharded import full_state, load_state, shard_with_optimizer

METHOD_FILE = "assay_pretrain.json"


# --- model --------------------------------------------------------------------------------------


def build(config: PretrainConfig, vocab_size: int) -> tuple[torch.nn.Module, Method]:
    """The model of ``config.model`` after ``config.method`` changed it, and the method."""
    cfg = llama_config(
        config.model.size,
        vocab_size=vocab_size,
        max_len=config.model.seq_len,
        tie_embeddings=config.model.tie_embeddings,
    )
    model = build_model(cfg, seed=config.train.seed)
    warm = config.method.relora.warm_start if config.method.name == "relora" else None
    if warm:
        from transformers import AutoModelForCausalLM

        model.load_state_dict(AutoModelForCausalLM.from_pretrained(warm).state_dict())
    generator = torch.Generator().manual_seed(config.train.seed)
    return model, prepare_method(model, config, generator)


def load_pretrained(path: str | Path) -> torch.nn.Module:
    """A model from a pretraining checkpoint: a plain ``AutoModelForCausalLM`` for every method
    except CoLA, whose factorised layers are rebuilt from ``assay_pretrain.json``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    info = json.loads((path / METHOD_FILE).read_text()) if (path / METHOD_FILE).exists() else {}
    if info.get("method") != "cola":
        return AutoModelForCausalLM.from_pretrained(path)
    from safetensors.torch import load_file

    from pretraining.cola import convert_cola
    from pretraining.methods import TARGETS

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    convert_cola(model, info["rank"], targets=TARGETS)
    model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    model.tie_weights()
    return model


# --- one step -----------------------------------------------------------------------------------


def _autocast(device: torch.device, dtype: str):
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lm_loss(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``input_ids`` (B, L) under ``model``."""
    logits = model(input_ids=input_ids).logits  # (B, L, V)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(), input_ids[:, 1:].reshape(-1)
    )


def train_step(
    model, method: Method, batch: torch.Tensor, micro: int, clip: float, precision
) -> dict[str, float]:
    """Forward/backward over ``batch`` (this rank's windows) in micro-batches, clip, step."""
    chunks = batch.split(micro)
    total = 0.0
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        sync = (
            contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        )
        with sync, precision:
            loss = lm_loss(model, chunk) / len(chunks)
            loss.backward()
        total += float(loss.detach())
    params = [p for group in method.optimizer.param_groups for p in group["params"]]
    limit = clip if clip > 0 else float("inf")
    if is_sharded(model):
        norm = clip_gradients(params, limit)
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
    method.optimizer.step()
    method.optimizer.zero_grad(set_to_none=True)
    return {"loss": total, "grad_norm": float(norm)}


@torch.no_grad()
def evaluate(model, data: PackedData, device, micro: int, precision) -> dict[str, float]:
    """Mean next-token loss and perplexity over the held-out windows."""
    model.eval()
    losses = []
    windows = torch.as_tensor(data.windows, dtype=torch.long)
    for chunk in windows.split(micro):
        with precision:
            losses.append(float(lm_loss(model, chunk.to(device))) * len(chunk))
    model.train()
    loss = sum(losses) / len(windows)
    return {"eval/loss": loss, "eval/ppl": math.exp(min(loss, 50.0))}


# --- the job ------------------------------------------------------------------------------------


def _memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"mem/gpu_max_gb": torch.cuda.max_memory_allocated(device) / 2**30}
    return {"mem/cpu_max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _run_dir(config: PretrainConfig, resume_dir: Path | None, world: World) -> Path:
    if resume_dir is not None:
        return resume_dir
    name = [None]
    if world.main:
        name[0] = str(new_run_dir(config.train.output_dir, "pretrain", config.train.run_name))
    if world.active:
        torch.distributed.broadcast_object_list(name, src=0)
    return Path(name[0])


def _corpus(config: PretrainConfig, run_dir: Path, world: World) -> Corpus:
    """Rank 0 tokenizes and packs (and saves the windows for exposure analysis); the others wait
    and read the same tokenizer from the cache."""
    corpus = None
    if world.main:
        corpus = prepare_corpus(config, run_dir / "data")
        corpus.train.save(run_dir / "data")
        corpus.tokenizer.save_pretrained(str(run_dir / "tokenizer"))
        write_json(run_dir / "data" / "meta.json", corpus.meta)
    barrier(world)
    return corpus if corpus is not None else prepare_corpus(config, run_dir / "data")


@dataclass
class _Run:
    """One pretraining run while it trains: what the loop, the checkpoints and the summary share."""

    config: PretrainConfig
    run_dir: Path
    world: World
    device: torch.device
    corpus: Corpus
    model: torch.nn.Module
    method: Method
    scheduler: torch.optim.lr_scheduler.LambdaLR
    start: int  # the step it starts from (0, or the resumed checkpoint's)

    def save(self, step: int, final: bool = False) -> None:
        """The checkpoint of ``step`` (or ``final/``), plus ``keep-<step>`` when it is in
        ``train.save_steps``; each holds dense weights (CoLA: its own) and ``assay_pretrain.json``."""
        sharded = is_sharded(self.model)
        if sharded:  # every rank gathers; rank 0 writes
            model_state, optimizer_state = full_state(self.model, self.method.optimizer)
        if not self.world.main:
            return
        state = {
            "optimizer": optimizer_state if sharded else self.method.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "model": model_state if sharded else self.model.state_dict(),
            "rng": torch.get_rng_state(),
        }
        weights = self.method.dense_state_dict(self.model, model_state if sharded else None)
        tokenizer = self.corpus.tokenizer
        if final:
            target = save_to(self.run_dir / "final", step, self.model, tokenizer, state,
                             state_dict=weights)  # fmt: skip
        else:
            target = save_checkpoint(self.run_dir, step, self.model, tokenizer, state,
                                     keep=self.config.train.keep_checkpoints, state_dict=weights)  # fmt: skip
        self._describe(target, step)
        if step in self.config.train.save_steps:
            self.save_kept(step, state, weights)

    def save_kept(self, step: int, state: dict[str, Any], weights=None) -> None:
        """``checkpoints/keep-<step>``: never pruned (``train.save_steps``; 0 = the initial
        weights). Every rank calls it when sharded."""
        if weights is None and is_sharded(self.model):
            whole = full_state(self.model, self.method.optimizer)[0]
            weights = self.method.dense_state_dict(self.model, whole) if self.world.main else None
        if not self.world.main:
            return
        weights = self.method.dense_state_dict(self.model) if weights is None else weights
        target = self.run_dir / "checkpoints" / f"keep-{step:06d}"
        save_to(target, step, self.model, self.corpus.tokenizer, state, state_dict=weights)
        self._describe(target, step)

    def _describe(self, target: Path, step: int) -> None:
        info = {"method": self.method.name, "step": step}
        if self.method.name == "cola":
            info["rank"] = self.config.method.cola.rank
        write_json(target / METHOD_FILE, info)


def run_pretrain(
    config: PretrainConfig,
    resume_dir: Path | None = None,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Train ``config``; return the run directory. ``resume_dir`` continues a run from its last
    checkpoint, reading exactly the windows the uninterrupted run would have read.

    ``init_state`` replaces the initial weights and ``masks`` (parameter name -> bool, True =
    kept) holds pruned weights at zero throughout (iterative magnitude pruning).
    """
    run = _prepare(config, resume_dir, init_state=init_state, masks=masks)
    params = count_parameters(run.model)
    last_eval = _train(run)
    run.save(config.train.max_steps, final=True)  # every rank: a sharded model is gathered
    if run.world.main:
        _finish(run.run_dir, config, run.method, params, run.corpus, last_eval)
    barrier(run.world)
    return run.run_dir


def _prepare(
    config: PretrainConfig,
    resume_dir: Path | None,
    *,
    init_state: dict[str, torch.Tensor] | None,
    masks: dict[str, torch.Tensor] | None,
) -> _Run:
    """The run directory, corpus, model, method and schedule, restored from ``resume_dir``."""
    world = init_world()
    device = resolve_device(config.train.device, world)
    run_dir = _run_dir(config, resume_dir, world)
    if world.main and resume_dir is None:
        dump_yaml(config, run_dir / "config.yaml")
    corpus = _corpus(config, run_dir, world)
    model, method = build(config, len(corpus.tokenizer))
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    if config.train.sharding == "fsdp":
        shard_with_optimizer(model, method, world, masks)
    if masks is not None:
        from pretraining.pruning import MaskEnforcer

        MaskEnforcer(model, masks, optimizer=method.optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(method.optimizer, method.lr_lambda)
    start = 0 if resume_dir is None else _restore(model, method, scheduler, resume_dir)
    return _Run(
        config=config,
        run_dir=run_dir,
        world=world,
        device=device,
        corpus=corpus,
        model=model,
        method=method,
        scheduler=scheduler,
        start=start,
    )


def _train(run: _Run) -> dict[str, float]:
    """Steps ``run.start`` to ``train.max_steps``: train, log, evaluate, checkpoint; returns the
    last evaluation."""
    config, world, device, corpus, method = (
        run.config,
        run.world,
        run.device,
        run.corpus,
        run.method,
    )
    train_model = run.model
    if world.active and not is_sharded(run.model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.local_rank] if device.type == "cuda" else None
        train_model = DistributedDataParallel(run.model, device_ids=ids)
    metrics = MetricsLog(run.run_dir / "metrics.jsonl")
    exposure = ExposureLog(run.run_dir / "exposure.jsonl")
    if world.main and run.start:
        metrics.truncate_after(run.start)
        exposure.truncate_after(run.start)
    precision = _autocast(device, config.train.dtype)
    t = config.train
    per_rank = t.batch_size // world.size
    micro = min(t.micro_batch_size, per_rank)
    windows = torch.as_tensor(corpus.train.windows, dtype=torch.long)
    if run.start == 0 and 0 in t.save_steps:  # the initial weights, for analysis
        run.save_kept(0, {})
    bar = tqdm(range(run.start, t.max_steps), initial=run.start, total=t.max_steps,
               disable=not world.main, desc=f"pretrain {method.name}")  # fmt: skip
    last_eval: dict[str, float] = {}
    for step in bar:
        began = time.perf_counter()
        ids = step_windows(step, t.batch_size, len(corpus.train), t.seed)
        mine = ids.reshape(world.size, per_rank)[world.rank]
        batch = windows[torch.as_tensor(mine)].to(device)  # (per_rank, L)
        record = train_step(train_model, method, batch, micro, config.optim.grad_clip, precision)
        lr = method.optimizer.param_groups[0]["lr"]
        run.scheduler.step()
        record.update(method.after_step(step + 1))
        elapsed = time.perf_counter() - began
        done = step + 1
        record.update(
            step=done,
            lr=lr,
            tokens=done * t.batch_size * corpus.train.seq_len,
            tokens_per_s=t.batch_size * corpus.train.seq_len / elapsed,
            **_memory(device),
        )
        if world.active:
            record["loss"] = all_sum(record["loss"], world) / world.size
        if corpus.eval is not None and (done % t.eval_every == 0 or done == t.max_steps):
            if world.main or is_sharded(run.model):  # a sharded forward needs every rank
                last_eval = evaluate(run.model, corpus.eval, device, t.micro_batch_size, precision)
                record.update(last_eval)
            barrier(world)
        if world.main:
            if t.log_exposure:
                exposure.append(done, ids.tolist())
            metrics.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.1e}")
        if done % t.checkpoint_every == 0 or done in t.save_steps or done == t.max_steps:
            run.save(done)
        barrier(world)
    return last_eval


def _restore(model, method: Method, scheduler, run_dir: Path) -> int:
    checkpoint = latest_checkpoint(run_dir)
    state = load_trainer_state(checkpoint)
    load_state(model, method.optimizer, state)
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])


def _finish(run_dir, config, method, params, corpus, last_eval) -> None:
    records = MetricsLog(run_dir / "metrics.jsonl").read()
    keys = ["loss", "eval/ppl", "lr", "tokens_per_s", "grad_norm"]
    plot_metrics(records, [k for k in keys if any(k in r for r in records)],
                 run_dir / "plots" / "training.png", title=f"pretrain {method.name}")  # fmt: skip
    summary = {
        "method": method.name,
        "model": config.model.size,
        "steps": config.train.max_steps,
        "parameters": params,
        "optimizer_state_bytes": optimizer_state_bytes(method.optimizer),
        "train_tokens_seen": config.train.max_steps
        * config.train.batch_size
        * config.model.seq_len,
        "corpus": corpus.meta,
        "final_loss": float(np.mean([r["loss"] for r in records[-10:]])) if records else None,
        **last_eval,
        "config": to_dict(config),
    }
    write_json(run_dir / "summary.json", summary)

"""The pretraining job: ``assay pretrain --config configs/pretrain_tiny.yaml [key=value ...]``.

One loop for every method (:mod:`pretraining.methods`): read the step's windows -> forward and
backward over micro-batches -> clip -> optimizer step -> method hook (ReLoRA resets) -> log
(metrics, exposure) -> evaluate -> checkpoint. Data-parallel over ``torchrun`` ranks with
PyTorch's ``DistributedDataParallel`` (gloo on a CPU, NCCL on GPUs): every rank reads its slice
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
from assay.paths import cache_dir
from assay.runs import MetricsLog, new_run_dir, plot_metrics, write_json
from pretraining.config import PretrainConfig
from pretraining.corpus import corpus_fingerprint, load_corpus, train_tokenizer
from pretraining.exposure import ExposureLog
from pretraining.methods import Method, optimizer_state_bytes, prepare_method
from pretraining.models import build_model, count_parameters, llama_config
from pretraining.packing import PackedData, pack, step_windows, tokenize_documents

METHOD_FILE = "assay_pretrain.json"


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Corpus:
    tokenizer: Any
    train: PackedData
    eval: PackedData | None
    meta: dict[str, Any]


def _documents(spec: str, config: PretrainConfig) -> tuple[list[str], dict[str, Any]]:
    documents = load_corpus(spec)
    meta: dict[str, Any] = {"corpus": spec, "documents": len(documents)}
    s = config.data.simplify
    if s.enabled:
        from pretraining.simplify import simple_vocabulary, simplify

        vocab = simple_vocabulary(path=s.vocab_file) if s.vocab_file else simple_vocabulary(
            **({"top_n": s.top_n} if s.top_n else {})
        )  # fmt: skip
        spans = simplify(documents, vocab, max_oov=s.max_oov, min_words=s.min_words)
        meta.update(simplified_spans=len(spans), vocabulary=len(vocab))
        documents = [span.text for span in spans]
    return documents, meta


def prepare_corpus(config: PretrainConfig, data_dir: Path) -> Corpus:
    """Tokenizer (trained once per corpus and size, then cached) and packed train/eval windows."""
    from transformers import AutoTokenizer

    documents, meta = _documents(config.data.corpus, config)
    if config.data.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(config.data.tokenizer)
    else:
        key = f"{corpus_fingerprint(documents)}-{config.data.vocab_size}"
        tokenizer = train_tokenizer(documents, config.data.vocab_size, cache_dir() / "bpe" / key)
    eos = tokenizer.eos_token_id
    seq_len = config.model.seq_len
    train = pack(tokenize_documents(documents, tokenizer), seq_len, eos)
    if config.data.max_train_tokens is not None:
        keep = max(1, config.data.max_train_tokens // seq_len)
        train = PackedData(train.windows[:keep], train.doc_starts)
    evaluation = None
    if config.data.eval_corpus:
        eval_docs = load_corpus(config.data.eval_corpus)
        evaluation = pack(tokenize_documents(eval_docs, tokenizer), seq_len, eos)
        evaluation = PackedData(
            evaluation.windows[: config.train.eval_windows], evaluation.doc_starts
        )
    meta.update(train_windows=len(train), train_tokens=train.num_tokens, seq_len=seq_len)
    return Corpus(tokenizer, train, evaluation, meta)


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
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
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


def _save(run_dir, step, model, method, scheduler, config, corpus, world, final=False) -> None:
    """The checkpoint of ``step`` (or ``final/``), plus ``keep-<step>`` when it is in
    ``train.save_steps``; each holds dense weights (CoLA: its own) and ``assay_pretrain.json``."""
    if not world.main:
        return
    raw = model.module if hasattr(model, "module") else model
    state = {
        "optimizer": method.optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "model": raw.state_dict(),
        "rng": torch.get_rng_state(),
    }
    weights = method.dense_state_dict(raw)
    if final:
        target = save_to(run_dir / "final", step, raw, corpus.tokenizer, state, state_dict=weights)
    else:
        target = save_checkpoint(run_dir, step, raw, corpus.tokenizer, state,
                                 keep=config.train.keep_checkpoints, state_dict=weights)  # fmt: skip
    _describe(target, method, config, step)
    if step in config.train.save_steps:
        _save_kept(run_dir, step, raw, method, config, corpus, state, weights)


def _save_kept(run_dir, step, raw, method, config, corpus, state, weights=None) -> None:
    """``checkpoints/keep-<step>``: never pruned (``train.save_steps``; 0 = the initial weights)."""
    weights = method.dense_state_dict(raw) if weights is None else weights
    target = run_dir / "checkpoints" / f"keep-{step:06d}"
    save_to(target, step, raw, corpus.tokenizer, state, state_dict=weights)
    _describe(target, method, config, step)


def _describe(target: Path, method: Method, config: PretrainConfig, step: int) -> None:
    info = {"method": method.name, "step": step}
    if method.name == "cola":
        info["rank"] = config.method.cola.rank
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
    if masks is not None:
        from pretraining.pruning import MaskEnforcer

        MaskEnforcer(model, masks, optimizer=method.optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(method.optimizer, method.lr_lambda)
    start = 0 if resume_dir is None else _restore(model, method, scheduler, resume_dir)
    params = count_parameters(model)
    train_model = model
    if world.active:
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.local_rank] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    exposure = ExposureLog(run_dir / "exposure.jsonl")
    if world.main and start:
        metrics.truncate_after(start)
        exposure.truncate_after(start)
    precision = _autocast(device, config.train.dtype)
    t = config.train
    per_rank = t.batch_size // world.size
    micro = min(t.micro_batch_size, per_rank)
    windows = torch.as_tensor(corpus.train.windows, dtype=torch.long)
    if start == 0 and 0 in t.save_steps and world.main:  # the initial weights, for analysis
        _save_kept(run_dir, 0, model, method, config, corpus, {})
    bar = tqdm(range(start, t.max_steps), initial=start, total=t.max_steps,
               disable=not world.main, desc=f"pretrain {method.name}")  # fmt: skip
    last_eval: dict[str, float] = {}
    for step in bar:
        began = time.perf_counter()
        ids = step_windows(step, t.batch_size, len(corpus.train), t.seed)
        mine = ids.reshape(world.size, per_rank)[world.rank]
        batch = windows[torch.as_tensor(mine)].to(device)  # (per_rank, L)
        record = train_step(train_model, method, batch, micro, config.optim.grad_clip, precision)
        lr = method.optimizer.param_groups[0]["lr"]
        scheduler.step()
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
            if world.main:
                last_eval = evaluate(model, corpus.eval, device, t.micro_batch_size, precision)
                record.update(last_eval)
            barrier(world)
        if world.main:
            if t.log_exposure:
                exposure.append(done, ids.tolist())
            metrics.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.1e}")
        if done % t.checkpoint_every == 0 or done in t.save_steps or done == t.max_steps:
            _save(run_dir, done, model, method, scheduler, config, corpus, world)
        barrier(world)
    if world.main:
        _save(run_dir, t.max_steps, model, method, scheduler, config, corpus, world, final=True)
        _finish(run_dir, config, method, params, corpus, last_eval)
    barrier(world)
    return run_dir


def _restore(model, method: Method, scheduler, run_dir: Path) -> int:
    checkpoint = latest_checkpoint(run_dir)
    state = load_trainer_state(checkpoint)
    model.load_state_dict(state["model"])
    method.optimizer.load_state_dict(state["optimizer"])
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

"""The one place engines are built: by the RL learner (:func:`engine_for_learner`, from the
``engines`` config section) and by every command that generates (:func:`open_engine`).

Each returns an engine behind :class:`trainers.engines.base.GenerationEngine`; the learner never
asks which backend it got.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal

import torch

from assay.errors import ConfigError
from trainers.engines.base import GenerationEngine

if TYPE_CHECKING:
    from trainers.rl.config import RLConfig


def open_engine(
    model: str,
    *,
    backend: Literal["hf", "vllm"] = "hf",
    replicas: int = 1,
    dtype: str = "float32",
    device: str = "cpu",
    tensor_parallel_size: int = 1,
    batch_size: int = 64,
    address: str | None = None,
):
    """``(engine, tokenizer)`` for the commands that generate (``assay rollout``, ``assay rm
    data``): one HF or vLLM engine, or a Ray pool of ``replicas`` of either (on the Ray cluster
    ``address`` names, else ``RAY_ADDRESS``'s, else a local one).

    Pool replicas on GPUs take one each when there are enough, else an equal share of them. vLLM
    runs on the GPU whenever there is one (``device`` only places HF engines)."""
    from assay.models import load_causal_lm, load_tokenizer_and_dir

    if tensor_parallel_size < 1:
        raise ConfigError(f"--tensor-parallel-size must be >= 1, got {tensor_parallel_size}.")
    if tensor_parallel_size > 1 and backend != "vllm":
        raise ConfigError("--tensor-parallel-size > 1 needs --backend vllm.")
    if replicas > 1:
        from trainers.engines.pool import EnginePool, EngineSpec

        tokenizer = load_tokenizer_and_dir(model)[0]  # a bad name fails before any replica
        count = torch.cuda.device_count()
        if device.startswith("cuda") and count == 0:
            raise ConfigError(f"--device {device}, but no GPU is visible here.")
        on_gpu = count > 0 and (backend == "vllm" or device.startswith("cuda"))
        if tensor_parallel_size > 1 and not on_gpu:
            raise ConfigError("--tensor-parallel-size > 1 needs GPUs, and none is visible.")
        gpus = 0.0
        if on_gpu:
            gpus = 1.0 if tensor_parallel_size > 1 or count >= replicas else count / replicas
        spec = EngineSpec(
            model,
            dtype=dtype,
            device="cuda" if on_gpu else "cpu",
            batch_size=batch_size,
            num_gpus=gpus,
            backend=backend,
            tensor_parallel_size=tensor_parallel_size,
        )
        return EnginePool(spec, replicas=replicas, address=address), tokenizer
    if backend == "vllm":
        from trainers.engines.vllm import VLLMEngine

        engine = VLLMEngine(model, dtype=dtype, tensor_parallel_size=tensor_parallel_size)
        return engine, load_tokenizer_and_dir(model)[0]
    from trainers.engines.hf import HFEngine

    loaded, tokenizer = load_causal_lm(model, dtype=dtype, device=device)
    return HFEngine(loaded, tokenizer, batch_size=batch_size), tokenizer


def engine_for_learner(config: RLConfig, model, tokenizer) -> tuple[GenerationEngine, bool]:
    """The engine ``config.engines`` chooses for the RL learner, and whether it holds weights of
    its own (then the learner syncs them after each update): a vLLM engine, a Ray pool of
    either backend, a copy of the policy (off-policy generation, or a sharded learner), or the
    learner's own model."""
    from trainers.engines.hf import HFEngine

    ro = config.engines
    if ro.backend == "vllm" and ro.replicas == 1:
        from trainers.engines.vllm import VLLMEngine

        return VLLMEngine(
            config.model.name,
            dtype=config.model.dtype,
            gpu_memory_utilization=ro.gpu_memory_utilization,
            tensor_parallel_size=ro.tensor_parallel_size,
        ), True
    if ro.replicas > 1:
        return _learner_pool(config, model), True
    # Off-policy generation runs while the learner updates, and a sharded learner's model needs
    # every rank for each forward: both generate on a whole copy of their own.
    if ro.off_policy or config.train.sharding == "fsdp":
        copied = copy.deepcopy(model)
        if hasattr(copied, "peft_config"):  # the engine holds plain weights; syncs send merged
            copied = copied.merge_and_unload()
        return HFEngine(copied.eval(), tokenizer), True
    return HFEngine(model, tokenizer), False


def _learner_pool(config: RLConfig, model):
    from trainers.engines.pool import EnginePool, EngineSpec

    ro = config.engines
    device = "cuda" if str(model.device).startswith("cuda") else "cpu"
    gpus = 0.0
    if device == "cuda":
        gpus = ro.colocated_gpu_share if ro.placement == "colocated" else 1.0
    spec = EngineSpec(
        config.model.name,
        dtype=config.model.dtype,
        device=device,
        num_gpus=gpus,
        backend=ro.backend,
        tensor_parallel_size=ro.tensor_parallel_size,
        vllm_kwargs={"gpu_memory_utilization": ro.gpu_memory_utilization},
    )
    # Separate replicas must not land on the learner's GPU in a local cluster.
    hide = [model.device.index or 0] if device == "cuda" and ro.placement == "separate" else []
    return EnginePool(
        spec,
        replicas=ro.replicas,
        chunk_size=ro.chunk_size,
        weight_sync=ro.weight_sync,
        address=ro.address,
        hide_gpus=hide,
        call_timeout_s=ro.call_timeout_s,
        start_timeout_s=ro.start_timeout_s,
    )

"""LLaMA-architecture model configs by name, built with transformers' ``LlamaConfig`` so every
dense checkpoint loads with ``AutoModelForCausalLM``.

The 60M..1.3B shapes are the ones ReLoRA (Lialin et al. 2023) and GaLore (Zhao et al. 2024) train
on C4 (their Table "model architectures"); the small ones (1M..20M) are ours, for CPU runs and
scaling sweeps. The number in a name is roughly the total parameter count at the 32k vocabulary
those papers use; with a small BPE vocabulary the embeddings shrink, so :func:`count_parameters`
reports what a built model really has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from assay.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int


MODEL_SHAPES: dict[str, Shape] = {
    "llama-1m": Shape(hidden=64, layers=4, heads=4, ffn=176),
    "llama-3m": Shape(hidden=128, layers=4, heads=4, ffn=344),
    "llama-10m": Shape(hidden=256, layers=4, heads=8, ffn=688),
    "llama-20m": Shape(hidden=384, layers=6, heads=6, ffn=1024),
    # ReLoRA / GaLore family: hidden, layers, heads, FFN as in the papers.
    "llama-60m": Shape(hidden=512, layers=8, heads=8, ffn=1376),
    "llama-130m": Shape(hidden=768, layers=12, heads=12, ffn=2048),
    "llama-250m": Shape(hidden=768, layers=24, heads=16, ffn=2560),
    "llama-350m": Shape(hidden=1024, layers=24, heads=16, ffn=2736),
    "llama-1.3b": Shape(hidden=2048, layers=24, heads=32, ffn=5461),
}


def list_models() -> list[str]:
    return list(MODEL_SHAPES)


def llama_config(name: str, *, vocab_size: int, max_len: int, tie_embeddings: bool = False):
    """The ``LlamaConfig`` of a named shape for a tokenizer of ``vocab_size`` ids."""
    from transformers import LlamaConfig

    if name not in MODEL_SHAPES:
        raise ConfigError(
            f"Unknown model size {name!r}.{did_you_mean(name, MODEL_SHAPES)} "
            f"Known: {', '.join(MODEL_SHAPES)}."
        )
    shape = MODEL_SHAPES[name]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=tie_embeddings,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=None,
    )


def build_model(config, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised ``LlamaForCausalLM`` (the same weights for the same seed)."""
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total, trainable and non-embedding parameters (Kaplan et al. 2020 count N without the
    token embeddings and the LM head, which is what the scaling-law fits use)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    embedding = 0
    seen: set[int] = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and id(module.weight) not in seen:
            seen.add(id(module.weight))
            embedding += module.weight.numel()
    return {"total": total, "trainable": trainable, "non_embedding": total - embedding}

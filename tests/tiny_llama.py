"""The tiny LLaMA that unit tests share (``from tiny_llama import tiny_llama``: pytest puts
``tests/``, the folder of the root conftest.py, on ``sys.path``)."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

TINY = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=64,
)


def tiny_config() -> LlamaConfig:
    return LlamaConfig(**TINY)


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer LLaMA with a 64-token vocabulary, the same weights for the same seed."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config())

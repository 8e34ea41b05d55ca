"""The engine interface: prompts in, completions with token log-probs out.

Every backend is a :class:`GenerationEngine`: ``generate(prompts, sampling)`` takes chat-message
lists (templated by the engine) or token-id lists (used as they are, for multi-turn episodes that
must stay token-exact), and returns ``sampling.n`` :class:`Completion` per prompt;
``update_weights(named_tensors)`` loads new policy weights in place; ``close()`` frees the engine.

Backends: :mod:`trainers.engines.hf` (transformers), :mod:`trainers.engines.vllm` (vLLM) and
:mod:`trainers.engines.pool` (either, as Ray actors). :mod:`trainers.engines.factory` builds the
one a config or a command names. This module imports neither transformers nor a backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

from envs import Message

Prompt = list[Message] | list[int]
"""A chat-message list, or the token ids of an already templated prompt."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; ``temperature=0`` means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Strings that end a completion (besides end-of-sequence). The completion's text stops
    before the string; its token ids keep the tokens up to and including it."""
    logprobs: bool = True
    """Return per-token log-probs (RL needs them; evaluation can skip the (B, T, V) logits)."""


@dataclass
class Completion:
    """One sampled answer. ``logprobs[i]`` is log p(token_ids[i]) at the sampling temperature,
    over the full vocabulary (before top-p/top-k truncation), as the GRPO loss computes it."""

    text: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" (end-of-sequence produced) or "length"
    train_mask: list[int] | None = None
    """Multi-turn contexts (``trainers.rl.multi_turn``): ``token_ids`` also holds the ids the env
    and the chat template added between turns; 1 marks the policy's own tokens (trained on)."""


class GenerationEngine(Protocol):
    """What every generation backend offers (HF, the Ray pool, vLLM)."""

    def generate(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]: ...

    def update_weights(
        self, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
    ) -> None: ...

    def close(self) -> None: ...


def encode_prompts(tokenizer, prompts: list[Prompt]) -> list[list[int]]:
    """Chat-template each message-list prompt, ending with the assistant turn's opening;
    token-id prompts pass through unchanged. Every engine encodes this way, so all backends see
    the same input ids."""
    return [
        list(p)
        if is_token_ids(p)
        else tokenizer.apply_chat_template(
            p, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for p in prompts
    ]


def named_items(
    named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
) -> Iterable[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs from a state dict or from an iterable of pairs."""
    return named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors


def distinct_tensors(
    named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
) -> list[tuple[str, torch.Tensor]]:
    """The pairs minus tensors that share memory with one listed earlier (tied embeddings and
    LM head): a replica built from the same model ties them too, so sending one updates both,
    and a sync moves less (SmolLM2-135M: 17% less)."""
    seen, out = set(), []
    for name, tensor in named_items(named_tensors):
        key = (tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())
        if tensor.numel() and not tensor.is_meta and key in seen:
            continue
        seen.add(key)
        out.append((name, tensor))
    return out


def is_token_ids(prompt: Prompt) -> bool:
    return len(prompt) > 0 and isinstance(prompt[0], int)

"""The RL job's ``model`` and ``lora`` sections: which policy, in what precision, and how its
memory is spent (chunked log-probs, activation checkpointing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """Registered name (see ``assay.models``), local directory or hub id."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and compute dtype; bfloat16 only pays off on a GPU."""
    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:1``... or ``auto`` (CUDA if available; with several processes,
    each takes the GPU of its local rank)."""
    autocast: Literal["none", "bf16"] = "none"
    """``bf16``: run forward passes under bf16 autocast with fp32 master weights (GPU)."""
    logprob_chunk: int = 512
    """Tokens per chunk of the LM head when the learner computes log-probs and entropies: peak
    memory O(chunk x vocab) instead of O(tokens x vocab), same values and gradients. 0: full
    logits."""
    gradient_checkpointing: bool = False
    """Activation checkpointing: recompute each decoder layer in the backward instead of keeping
    its activations. The trained pass then runs each completion with its prompt (transformers
    drops the KV cache the shared-prompt pass needs under checkpointing)."""

    def problems(self) -> list[str]:
        if self.logprob_chunk < 0:
            return [f"logprob_chunk must be >= 0 (0: full logits), got {self.logprob_chunk}"]
        return []


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train low-rank adapters (``peft``) instead of every weight."""
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """Module names (as in the model) that get adapters."""

    def problems(self) -> list[str]:
        out = []
        if self.r < 1 or self.alpha < 1:
            out.append(f"r and alpha must be >= 1, got r={self.r} alpha={self.alpha}")
        if not 0 <= self.dropout < 1:
            out.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            out.append("target_modules must name at least one module")
        return out

"""Forward passes over a padded batch: the policy's log-probs (with entropy and hidden states
for the value head when asked), and frozen passes without gradients, micro-batch by
micro-batch, for the sampling policy's ("old") and the reference policy's log-probs."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from trainers.logprobs import GroupedOutput, grouped_forward, rowwise_forward
from trainers.rl.batch import Batch, group_rows, slice_groups
from trainers.rl.config import RLConfig


class PolicyForward:
    """The learner's model, its value head (PPO) and its KL reference, run over batches.

    ``reference`` None with a LoRA model: the base model under the adapters is the reference."""

    def __init__(
        self, config: RLConfig, model, value_head=None, reference=None, lockstep=None, device=None
    ):
        """``lockstep(chunks)``: ``(chunk, real)`` pairs, padded with passes whose output is
        dropped so that a sharded model runs as often on every rank (default: no padding).
        ``device``: where batches live (default: the model's; CPU offload moves parameters)."""
        self.model, self.value_head, self.reference = model, value_head, reference
        self.device = device or next(model.parameters()).device
        self.lockstep = lockstep or (lambda chunks: [(c, True) for c in chunks])
        self.temperature = config.sampling.temperature
        self.bf16 = config.model.autocast == "bf16"
        self.chunk = config.model.logprob_chunk
        # Under activation checkpointing transformers drops the KV cache in training mode, so
        # the shared-prompt pass would lose its prompt: the trained pass goes row by row.
        self.rowwise = config.model.gradient_checkpointing

    def autocast(self):
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(
        self, model, batch: Batch, entropy=False, entropy_grad=False, hidden=False
    ) -> GroupedOutput:
        path = grouped_forward
        if self.rowwise and model.training and torch.is_grad_enabled():
            path = rowwise_forward
        with self.autocast():
            return path(
                model,
                batch["prompt_ids"],
                batch["prompt_mask"],
                batch["completion_ids"],
                batch["completion_mask"],
                temperature=self.temperature,
                with_entropy=entropy,
                entropy_grad=entropy_grad,
                with_hidden=hidden,
                chunk=self.chunk,
            )

    def policy(self, batch: Batch, entropy_grad: bool) -> GroupedOutput:
        """The trained pass: log-probs, entropies and (with a value head) hidden states."""
        return self(
            self.model,
            batch,
            entropy=True,
            entropy_grad=entropy_grad,
            hidden=self.value_head is not None,
        )

    @torch.no_grad()
    def frozen(
        self, batch: Batch, chunks: list[list[int]], group_size: int, reference: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logprobs, values)``, both (B, T_c), of the whole batch without gradients: the
        sampling policy's (values from the value head, if any), or the reference policy's
        (values None). Runs in eval mode (no dropout), as generation does."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self._frozen(batch, chunks, group_size, reference)
        finally:
            self.model.train(was_training)

    def _frozen(self, batch: Batch, chunks, group_size: int, reference: bool):
        width = batch["completion_ids"].shape
        logprobs = torch.zeros(width, device=self.device)
        values = torch.zeros(width, device=self.device) if not reference else None
        for groups, real in self.lockstep(chunks):
            rows = group_rows(groups, group_size).to(self.device)
            sub = slice_groups(batch, groups, group_size)
            if reference and self.reference is None:  # LoRA: the base model is the reference
                with self.model.disable_adapter():
                    out = self(self.model, sub)
            else:
                model = self.reference if reference else self.model
                want_hidden = values is not None and self.value_head is not None
                out = self(model, sub, hidden=want_hidden)
                if want_hidden and real:
                    values[rows] = self.value_head(out.hidden).float()
            if real:
                logprobs[rows] = out.logprobs.float()
        return logprobs, values


def enable_checkpointing(model) -> None:
    """Activation checkpointing on every decoder layer (transformers' own, non-reentrant, which
    also works where the inputs need no gradient, as under frozen LoRA bases)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


CHECKPOINTING_NOTE = (
    "Activation checkpointing is on: the trained pass runs each completion with its prompt "
    "(transformers drops the KV cache that the shared-prompt pass needs under checkpointing); "
    "the frozen passes still run each prompt once."
)

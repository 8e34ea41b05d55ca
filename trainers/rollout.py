"""Generation behind one small interface: chat prompts in, completions with token logprobs out.

:class:`HFEngine` is the transformers backend (batched ``generate`` with left padding and the KV
cache, CPU or GPU). The vLLM backend and the Ray pool will implement the same ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from envs import Message


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; ``temperature=0`` means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    seed: int | None = None
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


class HFEngine:
    """Batched generation with a transformers causal LM (left padding, KV cache)."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_ids = _eos_ids(model, tokenizer)

    def encode(self, prompts: list[list[Message]]) -> list[list[int]]:
        """Chat-template each prompt, ending with the assistant turn's opening."""
        return [
            self.tokenizer.apply_chat_template(
                p, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            for p in prompts
        ]

    @torch.inference_mode()
    def generate(self, prompts: list[list[Message]], sampling: Sampling) -> list[list[Completion]]:
        """``sampling.n`` completions for each prompt, as one list per prompt."""
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        encoded = self.encode(prompts)
        out: list[list[Completion]] = []
        per_call = max(1, self.batch_size // sampling.n)
        for start in range(0, len(encoded), per_call):
            out.extend(self._generate_batch(encoded[start : start + per_call], sampling))
        return out

    def _generate_batch(
        self, prompt_ids: list[list[int]], sampling: Sampling
    ) -> list[list[Completion]]:
        device = self.model.device
        pad_id = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for i, ids in enumerate(prompt_ids):  # left padding: prompts end where generation starts
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention_mask[i, width - len(ids) :] = 1
        greedy = sampling.temperature == 0
        was_training = self.model.training
        self.model.eval()
        generated = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy else (sampling.top_k or None),
            num_return_sequences=sampling.n,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=pad_id,
            output_logits=sampling.logprobs,
            return_dict_in_generate=True,
        )
        self.model.train(was_training)
        new_tokens = generated.sequences[:, width:]  # (B*n, T_new)
        if not sampling.logprobs:
            rows = new_tokens.cpu().tolist()
            return [
                [self._completion(ids, rows[i * sampling.n + j], None) for j in range(sampling.n)]
                for i, ids in enumerate(prompt_ids)
            ]
        # Raw logits per step -> log-probs at the sampling temperature, on the model's device:
        # only the chosen tokens' values, (B*n, T_new), cross to the CPU, not (B*n, T_new, V).
        logits = torch.stack(generated.logits, dim=1).float()  # (B*n, T_new, V)
        if not greedy:
            logits = logits / sampling.temperature
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1))
        new_tokens, logprobs = new_tokens.cpu(), logprobs.squeeze(-1).cpu()
        grouped: list[list[Completion]] = []
        for i, ids in enumerate(prompt_ids):
            group = []
            for j in range(sampling.n):
                row = i * sampling.n + j
                group.append(
                    self._completion(ids, new_tokens[row].tolist(), logprobs[row].tolist())
                )
            grouped.append(group)
        return grouped

    def _completion(
        self, prompt_ids: list[int], tokens: list[int], logprobs: list[float] | None
    ) -> Completion:
        length, finish = len(tokens), "length"
        for k, tok in enumerate(tokens):
            if tok in self.eos_ids:  # keep the end-of-sequence token: the policy chose to stop
                length, finish = k + 1, "stop"
                break
        tokens = tokens[:length]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        kept = logprobs[:length] if logprobs is not None else []
        return Completion(text, list(prompt_ids), tokens, kept, finish)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids

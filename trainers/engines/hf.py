"""The transformers backend: batched ``generate`` with left padding and the KV cache, on a CPU or
a GPU, over the learner's own model or a copy of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from transformers import DynamicCache, GenerationConfig, StoppingCriteria, StoppingCriteriaList

from trainers.engines.base import (
    Completion,
    Prompt,
    Sampling,
    encode_prompts,
    named_items,
)


class HFEngine:
    """Batched generation with a transformers causal LM (left padding, KV cache).

    With ``n > 1`` samples per prompt, each prompt is prefilled once and its KV cache repeated
    n times (``share_prefill``); transformers' ``num_return_sequences`` would prefill it n times.
    """

    def __init__(self, model, tokenizer, batch_size: int = 64, share_prefill: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.share_prefill = share_prefill
        self.eos_ids = _eos_ids(model, tokenizer)

    def encode(self, prompts: list[Prompt]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    @torch.no_grad()
    def update_weights(
        self, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
    ) -> None:
        """Copy new values into the model's parameters and buffers by name, in place."""
        items = named_items(named_tensors)
        own = self.model.state_dict(keep_vars=True)  # every name, tied weights included
        for name, tensor in items:
            if name not in own:
                raise KeyError(f"update_weights: the model has no tensor named {name!r}.")
            own[name].copy_(tensor.to(device=own[name].device, dtype=own[name].dtype))

    def close(self) -> None:
        """Drop the model (the caller may still hold it)."""
        self.model = None

    @torch.inference_mode()
    def generate(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
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
        # Sample from exactly the distribution the log-probs describe: the model's own generation
        # defaults (a repetition penalty, transformers' top_k=50) would otherwise apply unseen.
        # A peft model generates through its base model, whose config is the one that counts.
        holder = self.model.get_base_model() if hasattr(self.model, "peft_config") else self.model
        saved_config = holder.generation_config
        holder.generation_config = GenerationConfig(
            bos_token_id=saved_config.bos_token_id, eos_token_id=self.eos_ids, pad_token_id=pad_id
        )
        try:
            generated = self._generate_call(input_ids, attention_mask, sampling, width, pad_id)
        finally:
            holder.generation_config = saved_config
            self.model.train(was_training)
        new_tokens = generated.sequences[:, width:]  # (B*n, T_new)
        if not sampling.logprobs:
            rows = new_tokens.cpu().tolist()
            return [
                [
                    self._completion(ids, rows[i * sampling.n + j], None, sampling.stop)
                    for j in range(sampling.n)
                ]
                for i, ids in enumerate(prompt_ids)
            ]
        # Raw logits per step -> log-probs at the sampling temperature, one step at a time: a
        # float32 (B*n, T_new, V) stack would take gigabytes for long answers (64 x 256 x 49k).
        scale = 1.0 if greedy else sampling.temperature
        steps = [
            torch.log_softmax(step.float() / scale, dim=-1).gather(-1, new_tokens[:, t : t + 1])
            for t, step in enumerate(generated.logits)
        ]
        logprobs = torch.cat(steps, dim=1)  # (B*n, T_new): only the chosen tokens' values
        new_tokens, logprobs = new_tokens.cpu(), logprobs.cpu()
        grouped: list[list[Completion]] = []
        for i, ids in enumerate(prompt_ids):
            group = []
            for j in range(sampling.n):
                row = i * sampling.n + j
                group.append(
                    self._completion(
                        ids, new_tokens[row].tolist(), logprobs[row].tolist(), sampling.stop
                    )
                )
            grouped.append(group)
        return grouped

    def _shared_prefill(self, input_ids, attention_mask, n: int):
        """Run each prompt once (all but its last token) and repeat the KV cache n times, so
        ``generate`` samples n continuations without prefilling the same prompt n times; the
        last prompt token runs per row and yields the first sampled token's logits."""
        cache = DynamicCache()
        head_mask = attention_mask[:, :-1]
        self.model(
            input_ids=input_ids[:, :-1],
            attention_mask=head_mask,
            position_ids=(head_mask.cumsum(-1) - 1).clamp(min=0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.batch_repeat_interleave(n)
        return cache

    def _generate_call(self, input_ids, attention_mask, sampling: Sampling, width: int, pad_id):
        device = self.model.device
        greedy = sampling.temperature == 0
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        n, extra = sampling.n, {}
        if n > 1 and width > 1 and self.share_prefill:
            extra["past_key_values"] = self._shared_prefill(input_ids, attention_mask, n)
            input_ids = input_ids.repeat_interleave(n, dim=0)
            attention_mask = attention_mask.repeat_interleave(n, dim=0)
            n = 1
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **extra,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy else sampling.top_k,  # 0 disables top-k
            num_return_sequences=n,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=pad_id,
            stopping_criteria=(
                StoppingCriteriaList([_StopOnText(self.tokenizer, sampling.stop, width)])
                if sampling.stop
                else None
            ),
            output_logits=sampling.logprobs,
            return_dict_in_generate=True,
        )

    def _completion(
        self,
        prompt_ids: list[int],
        tokens: list[int],
        logprobs: list[float] | None,
        stop: tuple[str, ...] = (),
    ) -> Completion:
        length, finish = len(tokens), "length"
        for k, tok in enumerate(tokens):
            if tok in self.eos_ids:  # keep the end-of-sequence token: the policy chose to stop
                length, finish = k + 1, "stop"
                break
        tokens = tokens[:length]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if stop and (cut := _stop_cut(self.tokenizer, tokens, text, stop)) is not None:
            length, text = cut
            tokens, finish = tokens[:length], "stop"
        kept = logprobs[:length] if logprobs is not None else []
        return Completion(text, list(prompt_ids), tokens, kept, finish)


class _StopOnText(StoppingCriteria):
    """Stop a row once its *generated* text contains a stop string. (transformers' own
    ``stop_strings`` also matches across the prompt boundary, which vLLM does not.)"""

    def __init__(self, tokenizer, stop: tuple[str, ...], prompt_width: int):
        self.tokenizer, self.prompt_width = tokenizer, prompt_width
        self.stop = tuple(s for s in stop if s)
        # A token is at least one byte, so this many tokens hold any stop string and one more.
        self.window = max((len(s.encode()) for s in self.stop), default=0) + 1

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_width :]  # (B*n, T_so_far)
        tails = self.tokenizer.batch_decode(new[:, -self.window :], skip_special_tokens=True)
        done = [bool(self.stop) and any(s in tail for s in self.stop) for tail in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _stop_cut(tokenizer, tokens: list[int], text: str, stop: tuple[str, ...]):
    """``(n_tokens, text)`` for the first stop string in ``text``: the tokens up to the one that
    completes it, and the text before it; None if no stop string occurs."""
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return None
    at, _ = min(hits)

    def reaches(n: int) -> bool:
        piece = tokenizer.decode(tokens[:n], skip_special_tokens=True)
        return any(piece.find(s) == at for _, s in hits)

    low, high = 1, len(tokens)  # the shortest prefix that contains the stop string (monotone)
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if reaches(mid) else (mid + 1, high)
    return low, text[:at]


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids

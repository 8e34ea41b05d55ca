"""The learner's memory savers change no number: chunked log-probs (``model.logprob_chunk``) and
activation checkpointing (``model.gradient_checkpointing``, which switches the trained pass to
one row per completion) give the update of the full-logits, shared-prompt path."""

import copy

import pytest
import torch

from assay.config import load_config
from trainers.engines.base import Completion
from trainers.logprobs import grouped_forward, rowwise_forward
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples


def _samples(tokenizer) -> Samples:
    completions = []
    for p in range(2):
        messages = [{"role": "user", "content": f"Question {p}: say yes{' please' * p}."}]
        prompt = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for text in (["yes indeed", "no way at all", "maybe"], ["yes", "no", "perhaps not"])[p]:
            completions.append(Completion(text, prompt, tokenizer.encode(text), [], "stop"))
    return Samples(completions, torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]]))


def _update(model, tokenizer, overrides: dict):
    """The stats of one update and the gradients of each of its optimizer steps."""
    base = {"optim.lr": 3e-3, "sampling.temperature": 0.9, "eval.episodes": 0,
            "algo.group_size": 3, "algo.prompts_per_step": 2}  # fmt: skip
    config = load_config(RLConfig, overrides=[f"{k}={v}" for k, v in {**base, **overrides}.items()])
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    grads, step = [], learner.optimizer.step
    params = [p for p in learner.trainable_parameters()]

    def record_then_step(*args, **kwargs):
        grads.append([p.grad.clone() for p in params])
        return step(*args, **kwargs)

    learner.optimizer.step = record_then_step
    return learner.update(_samples(tokenizer)), grads


ALGOS = {
    "grpo+kl+entropy": {"algo.kl_coef": 0.1, "algo.entropy_coef": 0.01, "algo.epochs": 2},
    "ppo": {"algo.name": "ppo"},
    "lora": {"lora.enabled": True, "algo.kl_coef": 0.05},
}


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize(
    "saver",
    [{"model.logprob_chunk": 5}, {"model.logprob_chunk": 0, "model.gradient_checkpointing": True},
     {"model.logprob_chunk": 7, "model.gradient_checkpointing": True}],
    ids=["chunked", "checkpointing", "both"],
)  # fmt: skip
def test_memory_savers_give_the_same_update(tiny_lm, algo, saver):
    model, tokenizer = tiny_lm
    ref_stats, ref_grads = _update(model, tokenizer, {**ALGOS[algo], "model.logprob_chunk": 0})
    stats, grads = _update(model, tokenizer, {**ALGOS[algo], **saver})
    for key in ("loss", "grad_norm", "entropy"):
        assert stats[key] == pytest.approx(ref_stats[key], rel=1e-5, abs=1e-7), key
    assert ref_stats["grad_norm"] > 0 and len(grads) == len(ref_grads)
    # Gradients, not weights: AdamW divides by sqrt(v), which turns float32 noise in a near-zero
    # gradient into a full-size step. Each tensor equal relative to its norm, to 1e-3: float32
    # sums in another order differ by ~1e-4 of a small tensor's largest entry on some CPUs (an
    # AMD EPYC); a lost or doubled term is off by O(1).
    for step, ref_step in zip(grads, ref_grads, strict=True):
        for g, ref in zip(step, ref_step, strict=True):
            scale = ref.norm().clamp(min=1e-12)
            assert (g - ref).norm() / scale < 1e-3


def test_checkpointing_recomputes_the_layers(tiny_lm):
    """It is really on: the decoder layers run again during the backward."""
    model = copy.deepcopy(tiny_lm[0]).train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    calls, mlp = [], model.model.layers[0].mlp
    forward = mlp.forward
    mlp.forward = lambda x: calls.append(1) or forward(x)  # hooks do not see the recompute
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    out = rowwise_forward(model, ids[:, :3], torch.ones(1, 3, dtype=torch.long), ids[:, 3:],
                          torch.ones(1, 2, dtype=torch.long))  # fmt: skip
    assert len(calls) == 1
    out.logprobs.sum().backward()
    assert len(calls) == 2


def test_rowwise_forward_equals_grouped_forward(tiny_lm):
    model = copy.deepcopy(tiny_lm[0]).train()
    g = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(1000, (2, 5), generator=g)
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[0, :2] = 0
    completion_ids = torch.randint(1000, (4, 3), generator=g)
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[1, 2:] = 0
    args = (model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    kwargs = {"temperature": 0.7, "with_entropy": True, "entropy_grad": True, "with_hidden": True}
    grads = []
    for path in (grouped_forward, rowwise_forward):
        model.zero_grad()
        out = path(*args, **kwargs)
        (out.logprobs.sum() + out.entropy.sum() + out.hidden.sum()).backward()
        grads.append((out, model.model.embed_tokens.weight.grad.clone()))
    (a, grad_a), (b, grad_b) = grads
    mask = completion_mask.bool()
    torch.testing.assert_close(b.logprobs[mask], a.logprobs[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.entropy[mask], a.entropy[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.hidden[mask], a.hidden[mask], atol=1e-5, rtol=1e-5)
    assert grad_a.abs().sum() > 0

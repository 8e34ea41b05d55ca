import pytest
import torch

from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine
from trainers.logprobs import completion_logprobs

PROMPTS = [
    [{"role": "user", "content": "Name a fruit."}],
    [{"role": "user", "content": "Count to three, please."}],
]


def test_generate_returns_n_completions_with_consistent_logprobs(tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    groups = engine.generate(PROMPTS, Sampling(n=3, temperature=0.8, max_new_tokens=6, seed=0))
    assert [len(g) for g in groups] == [3, 3]
    for group in groups:
        for c in group:
            assert 1 <= len(c.token_ids) <= 6 and len(c.logprobs) == len(c.token_ids)
            assert c.finish_reason in ("stop", "length")
            # The logprobs reported by generation equal a teacher-forced pass at the same temperature.
            ids = torch.tensor([c.prompt_ids + c.token_ids])
            forced, _ = completion_logprobs(model, ids, torch.ones_like(ids), len(c.token_ids), 0.8)
            torch.testing.assert_close(torch.tensor([c.logprobs]), forced, atol=1e-4, rtol=1e-4)


def test_same_seed_same_samples_and_greedy_is_deterministic(tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    a = engine.generate(PROMPTS, Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=3))
    b = engine.generate(PROMPTS, Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=3))
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    g1 = engine.generate(PROMPTS, Sampling(temperature=0.0, max_new_tokens=5))
    g2 = engine.generate(PROMPTS[:1], Sampling(temperature=0.0, max_new_tokens=5))
    assert g1[0][0].token_ids == g2[0][0].token_ids  # padding does not change a greedy answer


def test_generation_stops_at_eos_and_keeps_it(tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    engine.eos_ids = list(range(len(tokenizer)))  # every token ends the answer
    (group,) = engine.generate(PROMPTS[:1], Sampling(temperature=1.0, max_new_tokens=5, seed=0))
    assert len(group[0].token_ids) == 1 and group[0].finish_reason == "stop"


def test_token_id_prompts_are_used_as_they_are(tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    greedy = Sampling(temperature=0.0, max_new_tokens=5)
    ids = engine.encode(PROMPTS)
    from_messages = engine.generate(PROMPTS, greedy)
    from_ids = engine.generate(ids, greedy)
    assert [g[0].token_ids for g in from_ids] == [g[0].token_ids for g in from_messages]
    assert [g[0].prompt_ids for g in from_ids] == ids


def test_stop_strings_end_the_text_before_them(tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    (full,) = engine.generate(PROMPTS[:1], Sampling(temperature=0.0, max_new_tokens=8))
    text = full[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]  # a piece of what greedy decoding writes
    (cut,) = engine.generate(PROMPTS[:1], Sampling(temperature=0.0, max_new_tokens=8, stop=(stop,)))
    assert cut[0].text == text[: text.find(stop)]
    assert cut[0].finish_reason == "stop"
    decoded = tokenizer.decode(cut[0].token_ids, skip_special_tokens=True)
    assert stop in decoded and stop not in tokenizer.decode(cut[0].token_ids[:-1])
    assert len(cut[0].logprobs) == len(cut[0].token_ids)


def test_update_weights_makes_outputs_those_of_the_new_weights(tiny_lm):
    import copy

    model, tokenizer = tiny_lm
    engine = HFEngine(copy.deepcopy(model), tokenizer)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5, alpha=1.0)
    greedy = Sampling(temperature=0.0, max_new_tokens=6)
    before = engine.generate(PROMPTS, greedy)
    expected = HFEngine(other, tokenizer).generate(PROMPTS, greedy)
    assert [g[0].token_ids for g in before] != [g[0].token_ids for g in expected]
    engine.update_weights(other.state_dict())
    after = engine.generate(PROMPTS, greedy)
    assert [g[0].token_ids for g in after] == [g[0].token_ids for g in expected]
    engine.update_weights((n, t) for n, t in model.named_parameters())  # an iterator works too
    assert [g[0].token_ids for g in engine.generate(PROMPTS, greedy)] == [
        g[0].token_ids for g in before
    ]


def test_update_weights_rejects_unknown_names(tiny_lm):
    import pytest

    model, tokenizer = tiny_lm
    with pytest.raises(KeyError, match="no tensor named 'lm_head.extra'"):
        HFEngine(model, tokenizer).update_weights({"lm_head.extra": torch.zeros(1)})


def test_the_models_own_generation_defaults_do_not_change_sampling(tiny_lm):
    import copy

    model, tokenizer = tiny_lm
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    clean = HFEngine(model, tokenizer).generate(PROMPTS, greedy)
    penalised = copy.deepcopy(model)
    penalised.generation_config.repetition_penalty = 5.0  # e.g. shipped with a chat model
    penalised.generation_config.top_k = 3
    got = HFEngine(penalised, tokenizer).generate(PROMPTS, greedy)
    assert [g[0].token_ids for g in got] == [g[0].token_ids for g in clean]
    assert penalised.generation_config.repetition_penalty == 5.0  # restored afterwards


def test_shared_prefill_samples_what_per_row_prefill_samples(tiny_lm):
    """Prefilling each prompt once and repeating its cache gives the same samples and log-probs
    as transformers' num_return_sequences (which prefills every copy)."""
    model, tokenizer = tiny_lm
    prompts = [
        [{"role": "user", "content": "Write a poem about the sea and the wind."}],
        [{"role": "user", "content": "Hi"}],  # shorter: left padding inside the shared cache
    ]
    sampling = Sampling(n=4, temperature=1.0, max_new_tokens=10, seed=3)
    shared = HFEngine(model, tokenizer, share_prefill=True).generate(prompts, sampling)
    plain = HFEngine(model, tokenizer, share_prefill=False).generate(prompts, sampling)
    for group_a, group_b in zip(shared, plain, strict=True):
        assert [c.token_ids for c in group_a] == [c.token_ids for c in group_b]
        for a, b in zip(group_a, group_b, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    assert len({tuple(c.token_ids) for c in shared[0]}) > 1  # n real samples, not one repeated


def test_a_sync_sends_tied_weights_once_and_the_replica_still_ends_up_equal(tiny_lm):
    import copy

    from trainers.engines.base import distinct_tensors

    model, tokenizer = tiny_lm
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, like SmolLM2
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    state = other.state_dict()
    sent = dict(distinct_tensors(state))
    assert set(state) - set(sent) == {"lm_head.weight"}
    replica = HFEngine(copy.deepcopy(model), tokenizer)
    replica.update_weights(sent)
    for name, tensor in replica.model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)
    empty = [("a", torch.empty(0)), ("b", torch.empty(0))]  # no memory, nothing to share
    assert [n for n, _ in distinct_tensors(empty)] == ["a", "b"]
    x = torch.zeros(4)
    views = [("x", x), ("bits", x.view(torch.int32)), ("slice", x[1:]), ("again", x)]
    assert [n for n, _ in distinct_tensors(views)] == ["x", "bits", "slice"]

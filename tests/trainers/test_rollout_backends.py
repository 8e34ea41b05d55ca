"""The learner with a separate rollout engine: weight sync, the engine-vs-learner log-prob gap,
truncated importance weights, and one-step-off-policy training."""

import copy

import pytest
import torch
from conftest import LengthEnv

from assay.config import load_config
from assay.errors import ConfigError
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner


def _config(**overrides):
    args = {
        "algo.group_size": 4,
        "algo.prompts_per_step": 1,
        "sampling.max_new_tokens": 6,
        "sampling.temperature": 1.0,
        "optim.lr": 1e-2,
        **overrides,
    }
    return load_config(RLConfig, overrides=[f"{k}={v}" for k, v in args.items()])


def test_in_process_engine_has_no_gap_and_no_importance_weights(tiny_lm):
    model, tokenizer = tiny_lm
    learner = RLLearner(_config(), copy.deepcopy(model), tokenizer)
    metrics = learner.step(LengthEnv(), 1)
    assert not learner.separate_engine
    assert metrics["engine_logprob_gap"] < 1e-4
    assert "is_weight_mean" not in metrics


def test_off_policy_trains_on_the_batch_generated_one_step_earlier(tiny_lm):
    model, tokenizer = tiny_lm
    start = copy.deepcopy(model)
    learner = RLLearner(_config(**{"engines.off_policy": True}), copy.deepcopy(model), tokenizer)
    try:
        first = learner.step(LengthEnv(), 1)
        second = learner.step(LengthEnv(), 2)
        trained_on = [c.token_ids for c in learner.last_samples.completions]
    finally:
        learner.close()
    # Step 2's batch came from the starting weights: an on-policy learner still holding them
    # samples exactly the same completions for step 2.
    reference = RLLearner(_config(), start, tokenizer).rollout.collect(LengthEnv(), 2)
    assert trained_on == [c.token_ids for c in reference.completions]
    assert first["engine_logprob_gap"] < 1e-4  # step 1: engine and learner both at the start
    assert second["engine_logprob_gap"] > 1e-3  # step 2: the learner moved on by one update
    assert second["is_weight_mean"] > 0 and 0 <= second["is_weight_capped"] <= 1
    assert second["weight_sync_s"] > 0  # the engine got step 1's weights at step 2


def test_truncated_weights_scale_each_tokens_term():
    from trainers.algos import clipped_policy_loss, truncated_is_weights

    learner_lp = torch.log(torch.tensor([[0.5, 0.9]]))
    engine_lp = torch.log(torch.tensor([[0.25, 0.1]]))
    weights = truncated_is_weights(learner_lp, engine_lp, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 2.0]]))  # 2.0 and 9.0 capped to 2
    weights = truncated_is_weights(engine_lp, learner_lp, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 1 / 9]]))
    logprobs = torch.zeros(1, 2, requires_grad=True)
    mask = torch.ones(1, 2)
    loss, _ = clipped_policy_loss(
        logprobs, logprobs.detach(), torch.tensor([1.0]), mask, 0.2, is_weights=weights
    )
    torch.testing.assert_close(loss, -(0.5 + 1 / 9) / 2 * torch.ones(()))  # ratio 1: -mean(w * A)


def test_tensor_parallel_hf_engines_are_a_config_error():
    with pytest.raises(ConfigError, match="tensor_parallel_size > 1 needs backend vllm"):
        _config(**{"engines.tensor_parallel_size": 2})
    config = _config(**{"engines.backend": "vllm", "engines.replicas": 2})  # a vLLM pool
    assert config.engines.replicas == 2


@pytest.mark.slow
def test_a_ray_pool_learner_syncs_its_replicas_after_each_step(tiny_lm):
    ray = pytest.importorskip("ray")
    model, tokenizer = tiny_lm
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    learner = RLLearner(
        _config(**{"engines.replicas": 2, "model.name": "tiny-random-llama"}),
        copy.deepcopy(model),
        tokenizer,
    )
    try:
        metrics = learner.step(LengthEnv(), 1)
        assert metrics["weight_sync_s"] > 0 and "is_weight_mean" in metrics
        prompts = [LengthEnv().reset(seed=s)[0] for s in range(4)]
        greedy = Sampling(temperature=0.0, max_new_tokens=6)
        expected = HFEngine(learner.model, tokenizer).generate(prompts, greedy)
        got = learner.engine.generate(prompts, greedy)
        assert [g[0].token_ids for g in got] == [g[0].token_ids for g in expected]
    finally:
        learner.close()
        ray.shutdown()


def test_pool_specs_that_cannot_work_are_refused_before_any_replica_starts():
    from trainers.engines.pool import EngineSpec

    assert EngineSpec("m").problems() == []
    assert EngineSpec("m", num_cpus=0).bundles() == []  # reserves nothing: no placement group
    tp = EngineSpec("m", backend="vllm", device="cuda", num_gpus=1, tensor_parallel_size=3)
    assert tp.bundles() == [{"CPU": 1.0, "GPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}]
    assert tp.problems() == [] and hash(tp) == hash(tp)
    (no_group,) = tp.problems("broadcast")
    assert "does not reach tensor-parallel replicas" in no_group
    (tp_on_hf,) = EngineSpec("m", num_gpus=1, tensor_parallel_size=2).problems()
    assert "needs backend vllm and num_gpus=1" in tp_on_hf
    (shared,) = EngineSpec("m", device="cuda", num_gpus=0.5).problems("broadcast")
    assert "NCCL refuses two ranks on one GPU" in shared
    assert EngineSpec("m", device="cuda", num_gpus=0.5).problems("object_store") == []


def test_tensor_parallel_pool_settings_that_cannot_work_are_config_errors():
    base = {"engines.backend": "vllm", "engines.replicas": 2, "engines.tensor_parallel_size": 2}
    with pytest.raises(ConfigError, match="needs placement: separate"):
        _config(**base, **{"engines.placement": "colocated"})
    with pytest.raises(ConfigError, match="broadcast does not reach tensor-parallel"):
        _config(**base, **{"engines.weight_sync": "broadcast"})
    assert _config(**base).engines.tensor_parallel_size == 2

"""The Ray rollout pool: same answers as one engine, every request once, weight sync, and a
replica killed mid-batch is replaced without losing or repeating work."""

import copy

import pytest
import torch

from assay.errors import ConfigError
from trainers.pool import EngineSpec, RolloutPool
from trainers.rollout import HFEngine, Sampling

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": f"Count to {i}, please."}] for i in range(10)]
GREEDY = Sampling(temperature=0.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def pool():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    pool = RolloutPool(EngineSpec("tiny-random-llama"), replicas=2, chunk_size=2)
    yield pool
    pool.close()
    ray.shutdown()


def _ids(groups):
    return [[c.token_ids for c in g] for g in groups]


def test_greedy_answers_match_a_single_engine_in_prompt_order(pool, tiny_lm):
    reference = HFEngine(*tiny_lm).generate(PROMPTS, GREEDY)
    assert _ids(pool.generate(PROMPTS, GREEDY)) == _ids(reference)


def test_stream_yields_every_request_once_and_seeded_sampling_repeats(pool):
    sampling = Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=7)
    seen = [index for index, _ in pool.stream(PROMPTS, sampling)]
    assert sorted(seen) == list(range(len(PROMPTS)))
    assert _ids(pool.generate(PROMPTS, sampling)) == _ids(pool.generate(PROMPTS, sampling))


def test_update_weights_reaches_every_replica(pool, tiny_lm):
    model, tokenizer = tiny_lm
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    expected = HFEngine(other, tokenizer).generate(PROMPTS, GREEDY)
    pool.update_weights(other.state_dict())
    try:
        assert _ids(pool.generate(PROMPTS, GREEDY)) == _ids(expected)
    finally:
        pool.update_weights(model.state_dict())


def test_a_replica_killed_mid_batch_is_restarted_and_nothing_is_lost(pool, tiny_lm):
    reference = _ids(HFEngine(*tiny_lm).generate(PROMPTS, GREEDY))
    restarts = pool.restarts
    results = {}
    for index, completions in pool.stream(PROMPTS, GREEDY):
        if not results:
            ray.kill(pool.actors[0], no_restart=True)  # while its other chunks are queued
        assert index not in results
        results[index] = [c.token_ids for c in completions]
    assert [results[i] for i in range(len(PROMPTS))] == reference
    assert pool.restarts == restarts + 1
    assert _ids(pool.generate(PROMPTS, GREEDY)) == reference  # the new replica works


def test_broadcast_weight_sync_and_a_restart_that_reforms_the_group(pool, tiny_lm):
    del pool  # only for its Ray cluster; this test builds its own pool
    model, tokenizer = tiny_lm
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    expected = _ids(HFEngine(other, tokenizer).generate(PROMPTS, GREEDY))
    reference = _ids(HFEngine(model, tokenizer).generate(PROMPTS, GREEDY))
    spec = EngineSpec("tiny-random-llama", num_cpus=0)  # the fixture's pool holds both CPUs
    broadcasting = RolloutPool(spec, replicas=2, chunk_size=2, weight_sync="broadcast")
    try:
        broadcasting.update_weights(other.state_dict())  # gloo broadcast from this process
        assert _ids(broadcasting.generate(PROMPTS, GREEDY)) == expected
        for n, _ in enumerate(broadcasting.stream(PROMPTS, GREEDY)):
            if n == 0:
                ray.kill(broadcasting.actors[1], no_restart=True)
        assert broadcasting.restarts == 1
        assert _ids(broadcasting.generate(PROMPTS, GREEDY)) == expected  # restarted with `other`
        broadcasting.update_weights(model.state_dict())  # a new group with the new replica
        assert _ids(broadcasting.generate(PROMPTS, GREEDY)) == reference
    finally:
        broadcasting.close()


def test_each_replica_runs_in_its_own_placement_group_and_restarts_there(pool):
    from ray.util import placement_group_table

    where = [ray.get(a.placement.remote()) for a in pool.actors]
    groups = [g.id.hex() for g in pool.groups]
    assert [w["placement_group"] for w in where] == groups and len(set(groups)) == 2
    for group in pool.groups:
        assert placement_group_table(group)["bundles"] == {0: {"CPU": 1.0}}
    ray.kill(pool.actors[1], no_restart=True)
    list(pool.stream(PROMPTS[:4], GREEDY))  # finds the dead replica and restarts it
    again = ray.get(pool.actors[1].placement.remote())
    assert again["placement_group"] == groups[1] and again["pid"] != where[1]["pid"]


def test_a_pool_the_cluster_cannot_place_says_what_it_lacks(pool):
    del pool  # its replicas hold both CPUs of the test cluster
    before = {g["placement_group_id"] for g in _live_groups()}
    with pytest.raises(ConfigError, match=r"replica 1 needs \[\{'CPU': 1.0\}\].*free now"):
        RolloutPool(EngineSpec("tiny-random-llama"), replicas=1, start_timeout_s=1)
    assert {g["placement_group_id"] for g in _live_groups()} == before  # nothing left behind


def test_a_spec_that_cannot_work_is_refused_before_anything_is_reserved(pool):
    del pool  # only for its Ray cluster
    before = {g["placement_group_id"] for g in _live_groups()}
    spec = EngineSpec("tiny-random-llama", num_gpus=1, tensor_parallel_size=2)  # HF has no TP
    with pytest.raises(ConfigError, match="tensor_parallel_size > 1 needs backend vllm"):
        RolloutPool(spec, replicas=2)
    assert {g["placement_group_id"] for g in _live_groups()} == before


def _live_groups():
    from ray.util import placement_group_table

    return [g for g in placement_group_table().values() if g["state"] != "REMOVED"]

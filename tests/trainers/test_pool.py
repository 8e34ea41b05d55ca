"""The Ray rollout pool: same answers as one engine, every request once, weight sync, and a
replica killed mid-batch is replaced without losing or repeating work."""

import copy
import os

import pytest
import torch

from assay.errors import ConfigError
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine
from trainers.engines.pool import EnginePool, EngineSpec

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": f"Count to {i}, please."}] for i in range(10)]
GREEDY = Sampling(temperature=0.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def pool():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    pool = EnginePool(EngineSpec("tiny-random-llama"), replicas=2, chunk_size=2)
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


def test_a_replica_that_hangs_without_dying_is_restarted_after_the_call_timeout(pool, tiny_lm):
    """The replica is alive but busy forever (stuck in a call): its chunks pass
    ``call_timeout_s``, so it is killed, restarted and counted, and its work goes again."""
    import time

    reference = _ids(HFEngine(*tiny_lm).generate(PROMPTS, GREEDY))
    hung, timeout = pool.hung, pool.call_timeout_s
    pool.call_timeout_s = 20.0
    try:
        pool.actors[0].__ray_call__.remote(lambda actor: time.sleep(600))  # stuck, not dead
        start = time.monotonic()
        results = dict(pool.stream(PROMPTS, GREEDY))
        assert time.monotonic() - start < 240  # not forever
    finally:
        pool.call_timeout_s = timeout
    assert [[c.token_ids for c in results[i]] for i in range(len(PROMPTS))] == reference
    assert pool.hung == hung + 1
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
    broadcasting = EnginePool(spec, replicas=2, chunk_size=2, weight_sync="broadcast")
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
    with pytest.raises(
        ConfigError,
        match=r"replica 1 needs 1 CPU and 0 GPUs on one machine.*free now: 0 CPUs and 0 GPUs",
    ):
        EnginePool(EngineSpec("tiny-random-llama"), replicas=1, start_timeout_s=1)
    assert {g["placement_group_id"] for g in _live_groups()} == before  # nothing left behind


def test_a_spec_that_cannot_work_is_refused_before_anything_is_reserved(pool):
    del pool  # only for its Ray cluster
    before = {g["placement_group_id"] for g in _live_groups()}
    spec = EngineSpec("tiny-random-llama", num_gpus=1, tensor_parallel_size=2)  # HF has no TP
    with pytest.raises(ConfigError, match="tensor_parallel_size > 1 needs backend vllm"):
        EnginePool(spec, replicas=2)
    assert {g["placement_group_id"] for g in _live_groups()} == before


def _live_groups():
    from ray.util import placement_group_table

    return [g for g in placement_group_table().values() if g["state"] != "REMOVED"]


HIDE_SCRIPT = """
import json, os, ray
from trainers.engines.cluster import init_ray

init_ray(ray, None, (0,))

@ray.remote(num_gpus=1, num_cpus=0)
class Seat:
    def where(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES")

seats = [Seat.remote() for _ in range(2)]
print(json.dumps({
    "gpus": ray.cluster_resources().get("GPU", 0),
    "seats": sorted(ray.get([s.where.remote() for s in seats])),
    "driver": os.environ["CUDA_VISIBLE_DEVICES"],
}))
ray.shutdown()
"""


def test_a_local_cluster_started_for_the_learner_leaves_its_gpu_out(tmp_path):
    """The learner on GPU 0 of three: the pool's own cluster holds GPUs 1 and 2 only, and the
    driver's CUDA_VISIBLE_DEVICES is put back. Ray takes the declared GPU ids as they are, so
    this runs without GPUs (a fresh process: the module's cluster is already up)."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["CUDA_VISIBLE_DEVICES"] = "0,1,2"
    done = subprocess.run(
        [sys.executable, "-c", HIDE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"gpus": 2.0, "seats": ["1", "2"], "driver": "0,1,2"}


def test_separate_replicas_with_only_the_learners_gpu_are_refused_at_once(monkeypatch):
    from trainers.engines.cluster import init_ray

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="colocated"):
        init_ray(ray, None, (0,))  # refused before any cluster starts


def test_the_learner_hides_its_gpu_only_from_separate_replicas(monkeypatch):
    from types import SimpleNamespace

    import trainers.engines.pool
    from assay.config import load_config
    from trainers.engines.factory import engine_for_learner
    from trainers.rl.config import RLConfig

    made = []
    monkeypatch.setattr(trainers.engines.pool, "EnginePool", lambda spec, **kw: made.append(kw))
    model = SimpleNamespace(device=torch.device("cuda", 1))
    for placement in ("separate", "colocated"):
        overrides = ["model.name=tiny-random-llama", "engines.replicas=2", "engines.address=auto"]
        config = load_config(RLConfig, overrides=[*overrides, f"engines.placement={placement}"])
        engine_for_learner(config, model, tokenizer=None)
    assert [kw["hide_gpus"] for kw in made] == [[1], []]
    assert [kw["address"] for kw in made] == ["auto", "auto"]


class _FakeRay:
    """Records how ``ray.init`` was called and the CUDA_VISIBLE_DEVICES it saw."""

    def __init__(self):
        self.calls = []

    def init(self, address=None, **kwargs):
        self.calls.append((address, kwargs.get("num_gpus"), os.environ.get("CUDA_VISIBLE_DEVICES")))


def test_a_named_cluster_is_joined_as_it_is_and_only_a_new_one_hides_gpus(monkeypatch):
    from trainers.engines.cluster import init_ray

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = _FakeRay()
    init_ray(fake, "ray://head:10001", (0,))  # a named cluster: its GPUs are its business
    init_ray(fake, None, ())  # nothing to hide: Ray's own choice
    init_ray(fake, None, (1,))  # a new local cluster without the learner's device 1
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    init_ray(fake, None, (0,))
    assert fake.calls == [
        ("ray://head:10001", None, "4,5,6"),
        (None, None, "4,5,6"),
        ("local", 2, "4,6"),
        (None, None, "4,5,6"),
    ]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5,6"  # the driver's, put back


def test_replica_env_unpins_cpu_vllm_and_keeps_tensor_parallel_gpus_visible():
    from trainers.engines.replica import replica_env

    cpu_vllm = EngineSpec("m", backend="vllm")
    bind = "VLLM_CPU_OMP_THREADS_BIND"
    assert replica_env(cpu_vllm, {}, {}) == {bind: "nobind"}
    # The user's value: the job's runtime_env reaches the workers itself; the driver's is sent
    # along (a remote cluster's workers never see the driver's environment).
    assert replica_env(cpu_vllm, {}, {bind: "0-3|4-7"}) == {}
    assert replica_env(cpu_vllm, {bind: "0-3|4-7"}, {}) == {bind: "0-3|4-7"}
    assert replica_env(EngineSpec("m", backend="vllm", device="cuda", num_gpus=1), {}, {}) == {}
    assert replica_env(EngineSpec("m"), {}, {}) == {}  # HF replicas need nothing
    tp = EngineSpec("m", backend="vllm", device="cuda", num_gpus=1, tensor_parallel_size=2)
    assert replica_env(tp, {}, {}) == {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


def test_a_replica_that_hangs_during_a_broadcast_sync_is_restarted_within_the_call_timeout(
    pool, tiny_lm
):
    """Broadcast sync is a collective: a member that hangs would stall it forever. The join, the
    send and the receipts are all bounded by ``call_timeout_s``; the hung replica is restarted
    with the new weights and counted."""
    import time

    del pool  # only for its Ray cluster
    model, tokenizer = tiny_lm
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    expected = _ids(HFEngine(other, tokenizer).generate(PROMPTS, GREEDY))
    spec = EngineSpec("tiny-random-llama", num_cpus=0)
    broadcasting = EnginePool(
        spec, replicas=2, chunk_size=2, weight_sync="broadcast", call_timeout_s=15.0
    )
    try:
        broadcasting.update_weights(model.state_dict())  # the group forms
        broadcasting.actors[0].__ray_call__.remote(lambda actor: time.sleep(600))
        start = time.monotonic()
        broadcasting.update_weights(other.state_dict())
        assert time.monotonic() - start < 150  # a few call timeouts, not forever
        assert broadcasting.hung == 1
        assert _ids(broadcasting.generate(PROMPTS, GREEDY)) == expected
    finally:
        broadcasting.close()


def test_a_sharded_learner_streams_its_weights_to_every_replica(pool, tiny_lm):
    """FSDP2 (a world of one here) gathers one tensor at a time into the pool: after an update
    and a sync, every replica's log-probs are the learner's, not the old model's."""
    import sys
    from pathlib import Path

    import torch.distributed as dist

    from assay.config import load_config
    from assay.sharding import full_tensor
    from trainers.logprobs import completion_logprobs
    from trainers.rl.config import RLConfig
    from trainers.rl.learner import RLLearner

    sys.path.insert(0, str(Path(__file__).parent))
    from dist_fsdp import fixed_batch

    model, tokenizer = tiny_lm
    overrides = ["train.sharding=fsdp", "algo.group_size=2", "algo.prompts_per_step=4",
                 "optim.lr=1e-2", "eval.episodes=0"]  # fmt: skip
    learner = RLLearner(load_config(RLConfig, overrides=overrides), copy.deepcopy(model),
                        tokenizer, engine=pool)  # fmt: skip
    try:
        learner.update(fixed_batch(tokenizer, [0, 1, 2, 3]))
        learner.sync_weights()
        sampled = [c for g in pool.generate(PROMPTS[:4], GREEDY) for c in g]
        trained = copy.deepcopy(model)
        trained.load_state_dict({n: full_tensor(t) for n, t in learner.model.state_dict().items()})
        for c in sampled:
            ids = torch.tensor([c.prompt_ids + c.token_ids])
            n = len(c.token_ids)
            with torch.no_grad():
                ours = completion_logprobs(trained, ids, torch.ones_like(ids), n)[0][0]
                before = completion_logprobs(model, ids, torch.ones_like(ids), n)[0][0]
            torch.testing.assert_close(torch.tensor(c.logprobs), ours, atol=1e-4, rtol=1e-4)
            assert (ours - before).abs().max() > 1e-3  # the update moved them
    finally:
        pool.update_weights(model.state_dict())
        dist.destroy_process_group()

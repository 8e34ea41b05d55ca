"""Rejection sampling (``assay train rft``), SFT from an env teacher, and RL from a warm start."""

import json
import shutil

import pytest
import torch
from conftest import LengthEnv

import envs
from assay.config import load_config
from trainers.engines.base import Completion
from trainers.rft import RFTConfig, run_rft, sample_round, select


def _info(valid=True):
    return {"valid": valid, "reason": "" if valid else "bad"}


def test_select_keeps_exactly_the_samples_at_or_above_the_threshold_without_duplicates():
    seeds = [7, 8]
    answers = [
        ["a", "a ", "b", "c", "d", "a"],  # "a " is "a" again once stripped
        ["a", "x", "y"],  # "a" on another episode is not a duplicate
    ]
    scored = [
        [(1.0, _info()), (1.0, _info()), (0.99, _info()), (1.5, _info(False)), (2.0, _info()),
         (1.0, _info())],
        [(1.0, _info()), (-1.0, _info(False)), (1.0, _info())],
    ]  # fmt: skip
    kept, counts = select(seeds, answers, scored, threshold=1.0)
    assert [(k["seed"], k["sample"], k["answer"]) for k in kept] == [
        (7, 0, "a"), (7, 4, "d"), (8, 0, "a"), (8, 2, "y"),
    ]  # fmt: skip
    assert counts == {"sampled": 9, "below_threshold": 1, "invalid": 2, "duplicate": 2}
    assert sum(counts.values()) - counts["sampled"] + len(kept) == counts["sampled"]


class _Scripted:
    """Answers each Codenames board with the targets (twice), a non-target and nonsense."""

    def __init__(self, seeds):
        self.env = envs.make("codenames-guess-v0")
        self.answers = {}
        for seed in seeds:
            prompt, _ = self.env.reset(seed=seed)
            b = self.env.board
            self.answers[repr(prompt)] = [self.env.demonstration(), self.env.demonstration(),
                                          f"Guesses: {b.non_targets[0]}", "I do not know"]  # fmt: skip

    def generate(self, prompts, sampling):
        return [[Completion(t, [], [], [], "stop") for t in self.answers[repr(p)][: sampling.n]]
                for p in prompts]  # fmt: skip


def test_a_sampled_round_keeps_the_rewarded_answers_with_their_prompts():
    from trainers.engines.base import Sampling

    env = envs.make("codenames-guess-v0")
    seeds = [3, 5, 11]
    engine = _Scripted(seeds)
    records, counts = sample_round(engine, env, seeds, Sampling(n=4), threshold=1.0, batch_size=2)
    assert counts == {"sampled": 12, "below_threshold": 3, "invalid": 3, "duplicate": 3}
    assert [r["seed"] for r in records] == seeds
    for record in records:
        observation, _ = env.reset(seed=record["seed"])
        assert record["messages"][:-1] == observation
        _, reward, _, _, info = env.step(record["messages"][-1]["content"])
        assert info["valid"] and reward == record["reward"] == 1.0


def _rft_config(tmp_path, name, rounds, **more):
    overrides = [
        "model.name=tiny-random-llama", "env.id=test-rft-length-v0", f"rft.rounds={rounds}",
        "rft.prompts=6", "rft.samples=3", "rft.max_new_tokens=6", f"train.output_dir={tmp_path}",
        f"train.run_name={name}", "train.batch_size=2", "train.checkpoint_every=1",
        "train.keep_checkpoints=5", "eval.episodes=2", "eval.max_new_tokens=4",
        "optim.lr=1e-3",
    ] + [f"{k}={v}" for k, v in more.items()]  # fmt: skip
    return load_config(RFTConfig, "configs/rft_codenames.yaml", overrides)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_rft_rounds_resume_exactly(tmp_path):
    envs.register("test-rft-length-v0", LengthEnv)  # random answers earn different rewards
    straight = run_rft(_rft_config(tmp_path, "straight", 2), log=lambda *_: None)
    a = tmp_path / "straight"
    assert [h["round"] for h in straight["rounds"]] == [1, 2]
    for round_ in (1, 2):
        rows = [json.loads(line) for line in (a / f"rounds/round-{round_}/data.jsonl").open()]
        assert rows and all(r["reward"] >= 1.0 for r in rows)  # LengthEnv: len % 3 == 2
        assert len({(r["seed"], r["answer"].strip()) for r in rows}) == len(rows)
        assert straight["rounds"][round_ - 1]["kept"] == len(rows)
        assert (a / f"rounds/round-{round_}/eval.json").exists()
    assert (a / "plots" / "rounds.png").exists()

    # Stopped after round 1, then resumed for 2 rounds: the same data and the same weights.
    run_rft(_rft_config(tmp_path, "resumed", 1), log=lambda *_: None)
    b = tmp_path / "resumed"
    run_rft(_rft_config(tmp_path, "resumed", 2), resume_dir=b, log=lambda *_: None)
    for round_ in (1, 2):
        data = f"rounds/round-{round_}/data.jsonl"
        assert (a / data).read_text() == (b / data).read_text()
    final = "rounds/round-2/sft/final"
    want = _weights(a / final)
    got = _weights(b / final)
    assert all(torch.equal(want[k], got[k]) for k in want)

    # Killed in the middle of round 2's fine-tune: it goes on from its last checkpoint.
    checkpoints = sorted((b / "rounds/round-2/sft/checkpoints").glob("checkpoint-*"),
                         key=lambda p: int(p.name.split("-")[1]))  # fmt: skip
    assert len(checkpoints) >= 2
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(b / final)
    (b / "rounds/round-2/done.json").unlink()
    (b / "rounds/round-2/sft/summary.json").unlink()
    summary = run_rft(_rft_config(tmp_path, "resumed", 2), resume_dir=b, log=lambda *_: None)
    got = _weights(b / final)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert summary["final"] == final


@pytest.mark.slow
def test_sft_from_the_env_teacher_then_rl_from_the_warm_start(tmp_path):
    from assay.cli import main
    from assay.models import load_causal_lm
    from trainers.distributed import World
    from trainers.rl.config import RLConfig
    from trainers.rl.job import _open_run

    args = ["train", "sft", "--config", "configs/sft_codenames_teacher.yaml",
            "model.name=tiny-random-llama", "data.episodes=12", "train.max_steps=2",
            "train.batch_size=4", "optim.lr=1e-3", f"train.output_dir={tmp_path}",
            "train.run_name=sft", "eval.episodes=3", "eval.max_new_tokens=4"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "sft"
    taught = [json.loads(line) for line in (run / "data" / "teacher.jsonl").open()]
    assert len(taught) == 12
    env = envs.make("codenames-guess-v0", n_targets=[2, 3], n_non_targets=[2, 3])
    for record in taught:
        observation, _ = env.reset(seed=record["seed"])
        assert record["messages"][:-1] == observation
        assert record["messages"][-1]["content"] == env.demonstration()
    summary = json.loads((run / "summary.json").read_text())
    for label in ("base", "trained"):
        metrics = summary[f"eval_{label}"]
        assert {"reward_mean", "valid_rate", "chance_reward"} <= set(metrics)
        assert metrics["chance_reward"] == 0.0  # no neutral words on these boards

    # RL from the run directory: the policy and the KL reference are the SFT model.
    tuned = load_causal_lm(str(run / "final"))[0].state_dict()
    base = load_causal_lm("tiny-random-llama")[0].state_dict()
    config = load_config(RLConfig, overrides=[
        f"model.name={run}", "algo.kl_coef=0.05", f"train.output_dir={tmp_path / 'rl'}",
        "eval.episodes=0"])  # fmt: skip
    lines = []
    _, learner, _ = _open_run(config, None, lines.append, World())
    reference = learner.reference.state_dict()
    assert all(torch.equal(reference[k], tuned[k]) for k in tuned)
    assert not all(torch.equal(reference[k], base[k]) for k in base)
    assert any(
        "Warm start from" in line and "the KL reference is this model" in line for line in lines
    )


@pytest.mark.slow
def test_a_round_sampled_by_a_ray_pool_keeps_what_one_engine_keeps(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from trainers.engines.pool import EnginePool

    pools, start = [], EnginePool.__init__

    def counted(self, *args, **kwargs):
        pools.append(kwargs.get("replicas"))
        start(self, *args, **kwargs)

    monkeypatch.setattr(EnginePool, "__init__", counted)
    envs.register("test-rft-length-v0", LengthEnv)
    # Nearly greedy (RFT refuses temperature 0), threshold 0: every prompt keeps its one
    # (deduplicated) answer, so the two rounds must agree row for row whatever seeds each engine
    # samples with; the pool deals the prompts to 2 replicas.
    greedy = {"rft.temperature": 1e-4, "rft.threshold": 0.0, "eval.episodes": 0}
    one = run_rft(_rft_config(tmp_path, "one", 1, **greedy), log=lambda *_: None)
    assert pools == []
    try:
        two = run_rft(
            _rft_config(tmp_path, "two", 1, **greedy, **{"rft.replicas": 2}), log=lambda *_: None
        )
    finally:
        ray.shutdown()
    data = "rounds/round-1/data.jsonl"
    rows = (tmp_path / "one" / data).read_text()
    assert len(rows.splitlines()) == 6 == one["rounds"][0]["kept"] == two["rounds"][0]["kept"]
    assert (tmp_path / "two" / data).read_text() == rows
    assert pools == [2]  # round 1's sampling ran on a pool of 2 replicas

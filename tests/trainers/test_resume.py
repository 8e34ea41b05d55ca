"""A run stopped after step k and resumed reproduces step k+1 of an uninterrupted run."""

import json

import pytest
from conftest import LengthEnv

import envs
from assay.config import load_config
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl

envs.register("test-length-v0", LengthEnv)


def _config(tmp_path, name, steps, extra=()):
    return load_config(
        RLConfig,
        overrides=[
            "model.name=tiny-random-llama",
            "env.id=test-length-v0",
            f"train.steps={steps}",
            "train.checkpoint_every=1",
            "train.keep_checkpoints=2",
            f"train.output_dir={tmp_path}",
            f"train.run_name={name}",
            "algo.group_size=4",
            "algo.epochs=2",
            "sampling.max_new_tokens=6",
            "sampling.temperature=1.0",
            "optim.lr=1e-3",
            "eval.episodes=0",
            *extra,
        ],
    )


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


TIMING = ("step_time_s", "rollout_time_s", "update_time_s", "tokens_per_s")


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("algo.name=ppo", "algo.mini_batches=2", "algo.prompts_per_step=2"),
        ("lora.enabled=true", "lora.r=2", "algo.kl_coef=0.1"),
        ("algo.name=dapo", "algo.kl_coef=0.1", "optim.schedule=cosine", "optim.warmup_steps=1"),
    ],
    ids=["grpo", "ppo-minibatches", "lora-kl", "dapo-kl-cosine"],
)
def test_resume_reproduces_the_next_step(tmp_path, extra):
    full = run_rl(_config(tmp_path, "full", 3, extra), log=lambda *_: None)
    run_rl(_config(tmp_path, "cut", 2, extra), log=lambda *_: None)
    cut_dir = tmp_path / "cut"
    # Simulate a crash after a step was logged but before its checkpoint: resume must drop it.
    with (cut_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "reward_mean": 123.0}) + "\n")
    run_rl(_config(tmp_path, "cut", 3, extra), resume_dir=cut_dir, log=lambda *_: None)

    expected, resumed = _metrics(tmp_path / "full"), _metrics(cut_dir)
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert expected[2]["loss"] != 0.0  # the step did learn something, so equality is meaningful
    for key in expected[2]:
        if key not in TIMING:
            assert resumed[2][key] == pytest.approx(expected[2][key], rel=1e-6, abs=1e-7), key
    assert full["steps"] == 3


def test_ctrl_c_during_generation_saves_a_resumable_checkpoint(tmp_path, monkeypatch):
    from trainers.rl.single_turn import SingleTurnRollout

    real_collect = SingleTurnRollout.collect

    def collect(self, env, step, next_env=None):
        if step == 3:
            raise KeyboardInterrupt
        return real_collect(self, env, step, next_env)

    monkeypatch.setattr(SingleTurnRollout, "collect", collect)
    config = _config(tmp_path, "interrupted", 5)
    config.train.checkpoint_every = 10
    with pytest.raises(KeyboardInterrupt):
        run_rl(config, log=lambda *_: None)
    run_dir = tmp_path / "interrupted"
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000002"]
    assert [r["step"] for r in _metrics(run_dir)] == [1, 2]


def test_ctrl_c_inside_an_update_keeps_the_last_consistent_checkpoint(tmp_path, monkeypatch):
    from trainers.rl.learner import RLLearner

    real_update = RLLearner.update

    def update(self, rollout):
        if self.weights_step == 2:  # step 3's update
            raise KeyboardInterrupt
        return real_update(self, rollout)

    monkeypatch.setattr(RLLearner, "update", update)
    config = _config(tmp_path, "mid-update", 5)
    config.train.checkpoint_every = 2
    with pytest.raises(KeyboardInterrupt):
        run_rl(config, log=lambda *_: None)
    run_dir = tmp_path / "mid-update"
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000002"]

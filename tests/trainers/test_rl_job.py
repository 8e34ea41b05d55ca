"""The RL job around the learner: evaluation during training with the best checkpoint, trackers,
plots, samples, a curriculum, and every algorithm end to end."""

import json

import pytest
from conftest import LengthEnv

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl


class LevelEnv(envs.TextEnv):
    """Reward = the ``level`` option, whatever the answer: shows which options a step used."""

    def __init__(self, level: int = 0):
        super().__init__()
        self.level = level

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "Say anything."}], self.make_info("player")

    def step(self, action):
        return [], float(self.level), True, False, self.make_info("player")


@pytest.fixture
def test_envs():
    envs.register("test-job-length-v0", LengthEnv)
    envs.register("test-job-level-v0", LevelEnv)
    yield
    for name in ("test-job-length-v0", "test-job-level-v0"):
        envs.registry._REGISTRY.pop(name, None)


def _config(tmp_path, name, **overrides) -> RLConfig:
    base = {
        "model.name": "tiny-random-llama",
        "env.id": "test-job-length-v0",
        "train.steps": 4,
        "train.checkpoint_every": 2,
        "train.output_dir": str(tmp_path),
        "train.run_name": name,
        "algo.group_size": 2,
        "sampling.max_new_tokens": 5,
        "sampling.temperature": 1.0,
        "optim.lr": 1e-3,
        "eval.episodes": 3,
    }
    base.update(overrides)
    return load_config(RLConfig, overrides=[f"{k}={v}" for k, v in base.items()])


def _records(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_eval_during_training_keeps_the_best_checkpoint_and_logs_everywhere(tmp_path, test_envs):
    config = _config(
        tmp_path,
        "evals",
        **{
            "eval.every": 2,
            "eval.sampled": 2,
            "train.samples_every": 2,
            "log.tensorboard": True,
            "log.wandb": True,
        },
    )
    summary = run_rl(config, log=lambda *_: None)
    run_dir = tmp_path / "evals"
    records = _records(run_dir)
    assert [("eval/reward_mean" in r) for r in records] == [False, True, False, True]
    for r in records[1::2]:
        assert 0 <= r["eval/sampled_reward_mean"] <= r["eval/sampled_max_reward"] <= 1
    best = json.loads((run_dir / "best.json").read_text())
    evals = {r["step"]: r["eval/reward_mean"] for r in records if "eval/reward_mean" in r}
    assert best["value"] == max(evals.values()) and evals[best["step"]] == best["value"]
    assert summary["best"] == best
    model, _ = load_causal_lm(str(run_dir / "checkpoints" / "best"))  # a loadable checkpoint
    assert model is not None
    assert (run_dir / "eval_step000002.json").exists()
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 2  # steps 2 and 4
    assert (run_dir / "plots" / "training.png").stat().st_size > 10_000
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_curriculum_switches_env_options_at_its_steps(tmp_path, test_envs):
    config = _config(
        tmp_path,
        "curriculum",
        **{
            "env.id": "test-job-level-v0",
            "env.schedule": "[{step: 3, kwargs: {level: 1}}]",
            "eval.episodes": 0,
        },
    )
    run_rl(config, log=lambda *_: None)
    assert [r["reward_mean"] for r in _records(tmp_path / "curriculum")] == [0, 0, 1, 1]


def test_a_bad_curriculum_phase_fails_before_training(tmp_path, test_envs):
    config = _config(tmp_path, "bad", **{"env.schedule": "[{step: 3, kwargs: {levle: 1}}]"})
    with pytest.raises(Exception, match="levle"):
        run_rl(config, log=lambda *_: None)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"algo.name": "dapo", "algo.max_sample_rounds": 2},
        {"algo.name": "dr_grpo"},
        {"algo.name": "rloo"},
        {"algo.name": "reinforce_pp"},
        {"algo.name": "gspo"},
        {"algo.name": "ppo", "algo.group_size": 1, "algo.prompts_per_step": 2},
        {"algo.kl_coef": 0.1, "algo.entropy_coef": 0.01, "optim.schedule": "cosine"},
        {"lora.enabled": True, "lora.r": 2},
    ],
    ids=["dapo", "dr_grpo", "rloo", "reinforce_pp", "gspo", "ppo", "kl+entropy", "lora"],
)
def test_every_algorithm_runs_the_job(tmp_path, test_envs, overrides):
    config = _config(tmp_path, "algo", **{"train.steps": 2, "eval.episodes": 2, **overrides})
    summary = run_rl(config, log=lambda *_: None)
    records = _records(tmp_path / "algo")
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["grad_norm"] >= 0 and r["loss"] == r["loss"] for r in records)  # no NaN
    assert summary["eval_trained"] is not None


def test_settings_that_would_fail_mid_run_fail_before_it(tmp_path, test_envs):
    from assay.errors import ConfigError
    from trainers.distributed import World
    from trainers.rl.checks import check_world

    with pytest.raises(ConfigError, match="best_metric 'recall'.*reward_mean"):
        run_rl(_config(tmp_path, "best", **{"eval.best_metric": "recall"}), log=lambda *_: None)
    assert not (tmp_path / "best").exists()
    with pytest.raises(ConfigError, match="k1 in the loss"):
        _config(tmp_path, "k1", **{"algo.kl_coef": 0.1, "algo.kl_estimator": "k1"})
    two = World(rank=0, size=2)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        check_world(_config(tmp_path, "w", **{"algo.prompts_per_step": 3}), two)
    with pytest.raises(ValueError, match="per process"):
        check_world(_config(tmp_path, "w", **{"algo.prompts_per_step": 2,
                                               "algo.mini_batches": 2}), two)  # fmt: skip
    with pytest.raises(ValueError, match="single learner process"):
        check_world(_config(tmp_path, "w", **{"engines.backend": "vllm"}), two)


def test_a_multi_agent_env_is_refused_before_anything_loads(tmp_path):
    from assay.errors import ConfigError

    config = _config(tmp_path, "game", **{"env.id": "codenames-game-v0", "model.name": "nope"})
    with pytest.raises(ConfigError, match="has 4 agents .* episodes.multi_turn: true"):
        run_rl(config)
    assert not any(tmp_path.iterdir())  # no run directory, no model loaded ("nope" is none)


def test_a_run_with_no_learning_signal_says_so_early(tmp_path, test_envs):
    """LevelEnv gives every answer the same reward: every group is flat, so nothing can be
    learned, and the job must say so after a few steps (not end silently)."""
    lines = []
    config = _config(tmp_path, "flat", **{"env.id": "test-job-level-v0", "train.steps": 6,
                                          "eval.episodes": 0})  # fmt: skip
    run_rl(config, log=lambda *parts: lines.append(" ".join(map(str, parts))))
    warnings = [line for line in lines if "no learning signal" in line]
    assert len(warnings) == 1  # once, after the fifth flat step
    assert "every group had equal rewards" in warnings[0]


def test_the_signal_watch_names_the_commonest_invalid_reason():
    from trainers.rl.job import SignalWatch

    class Flat:
        infos = [{"reason": "no 'Answer: <number>' found"}] * 3 + [{"reason": "empty"}]

    watch = SignalWatch(patience=2)
    assert watch.update({"zero_std_groups": 1.0, "valid_rate": 0.0}, Flat()) is None
    message = watch.update({"zero_std_groups": 1.0, "valid_rate": 0.0}, Flat())
    assert "no 'Answer: <number>' found\" (6x)" in message
    assert watch.update({"zero_std_groups": 1.0}, Flat()) is None  # once only
    fresh = SignalWatch(patience=2)
    fresh.update({"zero_std_groups": 1.0}, Flat())
    assert fresh.update({"zero_std_groups": 0.5}, Flat()) is None  # a signal resets it
    assert fresh.update({"zero_std_groups": 1.0}, Flat()) is None


def test_a_run_whose_engines_cannot_start_leaves_no_run_folder(tmp_path, test_envs, monkeypatch):
    import trainers.rl.job

    def no_pool(*args, **kwargs):
        raise RuntimeError("the Ray cluster could not place a replica")

    monkeypatch.setattr(trainers.rl.job, "RLLearner", no_pool)
    with pytest.raises(RuntimeError, match="could not place"):
        run_rl(_config(tmp_path, "nopool"), log=lambda *_: None)
    assert not (tmp_path / "nopool").exists()


def test_a_best_recorded_after_the_resumed_checkpoint_is_forgotten(tmp_path):
    """Killed between an eval that set a new best and that step's checkpoint: the resumed run
    evaluates that step again and must record it as the best again (as an unbroken run did)."""
    import json

    from trainers.rl.evaluation import Best

    (tmp_path / "best.json").write_text(json.dumps({"step": 6, "metric": "m", "value": 0.5}))
    assert Best(tmp_path, "m", start_step=5).value is None
    assert Best(tmp_path, "m", start_step=6).value == 0.5
    best = Best(tmp_path, "m", start_step=5)
    assert best.offer(None, 6, {"m": 0.5}, save=False)  # the re-run eval is a new best again

"""A GRPO run on a math env logs the grader's metrics and evaluates on the test split."""

import json

from assay.config import load_config
from trainers.rl.config import RLConfig
from trainers.rl.evaluation import eval_env
from trainers.rl.job import run_rl


def _config(tmp_path):
    return load_config(
        RLConfig,
        overrides=[
            "model.name=tiny-random-llama",
            "env.id=math-gsm8k-v0",
            "env.kwargs.format_weight=0.1",
            "train.steps=1",
            f"train.output_dir={tmp_path}",
            "train.run_name=math",
            "algo.group_size=2",
            "algo.prompts_per_step=1",
            "sampling.max_new_tokens=8",
            "eval.episodes=2",
            "eval.compare_base=false",
            "eval.env_kwargs.split=test",
        ],
    )


def test_eval_env_options_override_the_training_ones(tmp_path):
    config = _config(tmp_path)
    assert eval_env(config).split == "test"
    assert config.env.kwargs.get("split", "train") == "train"


def test_grpo_step_on_gsm8k_logs_correct_and_format(tmp_path):
    run_rl(_config(tmp_path), log=lambda *_: None)
    run_dir = tmp_path / "math"
    (record,) = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"correct", "format_ok", "reward_mean"} <= set(record)
    assert 0.0 <= record["correct"] <= 1.0
    trained = json.loads((run_dir / "eval_trained.json").read_text())
    assert len(trained["episodes"]) == 2 and "correct" in trained["metrics"]

"""reasoning-gym's datasets as ``rg/<name>-v0``: the same seed is the same entry reasoning-gym
generates, the reward is the dataset's own ``score_answer``, every dataset passes the checker,
and one trains for 2 steps."""

import json

import pytest

import envs
from assay.errors import ConfigError

reasoning_gym = pytest.importorskip("reasoning_gym")
from reasoning_gym.utils import extract_answer  # noqa: E402

from envs.rg import dataset_names  # noqa: E402


def _reference_reward(ref, entry, completion):
    """reasoning-gym's own pipeline: extract the answer, score it (a scorer that raises: 0)."""
    try:
        return ref.score_answer(extract_answer(completion), entry)
    except Exception:
        return 0.0


@pytest.mark.slow
def test_every_dataset_gives_reasoning_gyms_entries_and_rewards():
    checked = 0
    for name in dataset_names():
        if name == "composite":  # a mix of other datasets: it needs its list as an option
            continue
        env = envs.make(f"rg/{name}-v0", size=1000, rg_seed=7)
        ref = reasoning_gym.create_dataset(name, seed=7, size=1000)
        for seed in (0, 1, 1003):
            entry = ref[seed % 1000]
            for completion in (f"<answer>{entry['answer']}</answer>", "<answer>42</answer>", "42"):
                prompt, _ = env.reset(seed=seed)
                assert prompt[-1]["content"] == entry["question"], name
                reward = env.step(completion)[1]
                assert reward == pytest.approx(_reference_reward(ref, entry, completion)), name
                checked += 1
    assert checked >= 100 * 9


def test_a_few_datasets_pass_the_checker_and_refuse_unknown_options():
    for name in ("basic_arithmetic", "letter_counting", "sudoku"):
        env = envs.make(f"rg/{name}-v0")
        failed = [r for r in envs.check_env(env) if not r.passed]
        assert not failed, (name, failed)
    assert "rg/chain_sum-v0" in envs.list_envs()
    with pytest.raises(ConfigError, match="Its options are: .*max_terms"):
        envs.make("rg/chain_sum-v0", colour=3)
    env = envs.make("rg/chain_sum-v0", max_terms=2, min_terms=2)
    prompt, info = env.reset(seed=5)
    _, reward, *_, step_info = env.step(f"<answer>{info['gold']}</answer>")
    assert reward == 1.0 and step_info["answered"] == 1.0
    env.reset(seed=5)
    _, reward, *_, step_info = env.step("no tags")
    assert reward == 0.0 and not step_info["valid"]


def test_a_reasoning_gym_task_trains_for_two_steps(tmp_path):
    from assay.config import load_config
    from trainers.rl.config import RLConfig
    from trainers.rl.job import run_rl

    settings = {"model.name": "tiny-random-llama", "env.id": "rg/chain_sum-v0", "train.steps": 2,
                "train.output_dir": str(tmp_path), "train.run_name": "rg", "algo.group_size": 2,
                "sampling.max_new_tokens": 5, "eval.episodes": 2}  # fmt: skip
    run_rl(load_config(RLConfig, overrides=[f"{k}={v}" for k, v in settings.items()]),
           log=lambda *_: None)  # fmt: skip
    records = [json.loads(x) for x in (tmp_path / "rg" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all("answered" in json.dumps(r) for r in records)

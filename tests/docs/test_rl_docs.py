"""Runs docs/rl.md's "Adding an algorithm": the module it shows registers an estimator and a
preset that config validation, the learner and ``assay train rl`` (through the entry point)
all find by name."""

import copy
import doctest
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import LengthEnv, env_with_path, pip_install_target

from assay.config import load_config
from assay.errors import ConfigError
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner

DOC = Path(__file__).parents[2] / "docs" / "rl.md"


def _files() -> dict[str, str]:
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.DOTALL)
    return dict(blocks)


@pytest.fixture(scope="module")
def median_rl(tmp_path_factory):
    """The doc's module, imported from a file as a user's package would be."""
    path = tmp_path_factory.mktemp("plugin") / "median_rl.py"
    path.write_text(_files()["median_rl.py"])
    spec = importlib.util.spec_from_file_location("median_rl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_is_short_and_its_doctest_holds(median_rl):
    assert len(_files()["median_rl.py"].strip().splitlines()) <= 20
    failed, tried = doctest.testmod(median_rl)
    assert (failed, tried) == (0, 1)


def test_config_finds_the_new_preset_and_suggests_it_when_misspelt(median_rl):
    config = load_config(RLConfig, overrides=["algo.name=median_grpo"])
    assert config.algo.setting("advantage") == "median"
    assert config.algo.setting("clip_high") == 0.2  # GRPO's, from the defaults
    with pytest.raises(ConfigError, match="Did you mean 'median_grpo'"):
        load_config(RLConfig, overrides=["algo.name=median_grp"])


def test_the_learner_trains_with_the_new_estimator(median_rl, tiny_lm):
    model, tokenizer = tiny_lm
    overrides = ["algo.name=median_grpo", "algo.group_size=4", "sampling.temperature=1.0",
                 "sampling.max_new_tokens=8", "optim.lr=1e-3", "eval.episodes=0"]  # fmt: skip
    learner = RLLearner(load_config(RLConfig, overrides=overrides), copy.deepcopy(model), tokenizer)
    samples = learner.rollout.collect(LengthEnv(), step=1)
    tensors = learner.tensors(samples)
    expected = samples.rewards - samples.rewards.median(dim=1, keepdim=True).values
    torch.testing.assert_close(tensors.advantages[:, 0], expected.flatten())
    before = [p.detach().clone() for p in learner.model.parameters()]
    learner.update(samples)
    moved = any(
        not torch.equal(a, b) for a, b in zip(before, learner.model.parameters(), strict=True)
    )
    assert moved == bool(expected.abs().sum() > 0)


@pytest.mark.slow
def test_an_installed_algorithm_trains_from_the_command_line(tmp_path):
    project = tmp_path / "median-rl"
    project.mkdir()
    for name, content in _files().items():
        (project / name).write_text(content)
    site = tmp_path / "site"
    pip_install_target(project, site)
    config = Path(__file__).parents[2] / "configs" / "codenames_guess.yaml"
    argv = [sys.executable, "-m", "assay.cli", "train", "rl", "--config", str(config),
            "algo.name=median_grpo", "model.name=tiny-random-llama", "train.steps=1",
            "eval.episodes=0", "algo.group_size=2", "sampling.max_new_tokens=4",
            f"train.output_dir={tmp_path / 'runs'}"]  # fmt: skip
    done = subprocess.run(
        argv, cwd=tmp_path, env=env_with_path(site), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert "name: median_grpo" in (run / "config.yaml").read_text()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((run / "metrics.jsonl").read_text())["step"] == 1

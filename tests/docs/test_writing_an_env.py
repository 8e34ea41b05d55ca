"""Runs docs/writing-an-env.md: the files it shows, installed with pip, and its commands.

Test-only changes, so it runs in seconds: the package is installed with ``pip install --target``
(instead of ``-e .`` into the project's venv), and ``assay train rl`` gets the tiny random model
and two steps as overrides.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import env_with_path, pip_install_target

DOC = Path(__file__).parents[2] / "docs" / "writing-an-env.md"
SFT_OVERRIDES = [
    "model.name=tiny-random-llama",
    "data.episodes=6",
    "train.max_steps=2",
    "train.batch_size=2",
    "eval.episodes=2",
    "eval.max_new_tokens=4",
]
TRAIN_OVERRIDES = [
    "model.name=tiny-random-llama",
    "train.steps=2",
    "eval.episodes=4",
    "algo.group_size=2",
    "sampling.max_new_tokens=4",
]


def _files(text: str) -> dict[str, str]:
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, re.DOTALL)
    return dict(blocks)


def _commands(text: str) -> list[str]:
    return re.findall(r"^\$ (.+)$", text, re.MULTILINE)


def test_user_code_is_short():
    files = _files(DOC.read_text())
    assert set(files) == {"addition_game.py", "pyproject.toml", "addition.yaml", "teach.yaml"}
    assert (
        len(files["addition_game.py"].strip().splitlines())
        + len(files["pyproject.toml"].strip().splitlines())
        <= 60
    )


@pytest.mark.slow
def test_walkthrough_runs_as_written(tmp_path):
    text = DOC.read_text()
    project = tmp_path / "addition-game"
    project.mkdir()
    for name, content in _files(text).items():
        (project / name).write_text(content)
    site = tmp_path / "site"
    env = env_with_path(site)
    commands = _commands(text)
    assert commands == [
        "pip install -e .",
        "assay envs list",
        "assay envs check addition-v0",
        "assay train rl --config addition.yaml",
        "assay train sft --config teach.yaml",
    ]
    outputs = []
    for command in commands:
        argv = command.split()
        if argv[:2] == ["pip", "install"]:
            pip_install_target(project, site)
            outputs.append("")
            continue
        argv = [sys.executable, "-m", "assay.cli", *argv[1:]]
        if argv[3:5] == ["train", "rl"]:
            argv += TRAIN_OVERRIDES + [f"train.output_dir={tmp_path / 'runs'}"]
        if argv[3:5] == ["train", "sft"]:
            argv += SFT_OVERRIDES + [f"train.output_dir={tmp_path / 'sft'}"]
        done = subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "addition-v0" in outputs[1]
    assert "addition-v0: 6 passed, 0 failed" in outputs[2]
    assert "Held-out evaluation (2 episodes, greedy)" in outputs[4]
    (sft,) = (tmp_path / "sft").iterdir()
    taught = [json.loads(line) for line in (sft / "data" / "teacher.jsonl").open()]
    assert len(taught) == 6
    for record in taught:  # the teacher's answer is the sum asked for
        a, b = map(int, re.findall(r"\d+", record["messages"][-2]["content"]))
        assert record["messages"][-1]["content"] == f"Answer: {a + b}"
    assert (sft / "final" / "config.json").exists()
    assert "Held-out evaluation (4 episodes, greedy)" in outputs[3]
    (run,) = (tmp_path / "runs").iterdir()
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2 and '"correct"' in metrics[0]
    assert (run / "plots" / "training.png").exists()

"""The built wheel carries the package data a fresh ``pip install .`` needs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_wheel_contains_codenames_data(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("assay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "envs/codenames/data/wordlist_en.txt" in names
    assert "envs/codenames/data/minilm_l6.npy" in names
    assert {"assay/cli/__init__.py", "trainers/algos/grpo.py", "rewards/codenames.py"} <= names

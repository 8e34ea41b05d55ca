"""Fault injection: an RL run and a pretraining run are killed with SIGKILL at seeded random
points (mid-rollout, mid-update, mid-save, ...), resumed each time as a user would
(``--resume DIR``), and must end with the same ``metrics.jsonl`` as a run never interrupted, and
with no temporary files or folders left in the run directory."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
ROOT = TESTS.parent
# The length env rewards varied answers of the tiny model, so every step really learns.
DRIVER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from conftest import LengthEnv; "
    "import envs; envs.register('test-length-v0', LengthEnv); "
    "from assay.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _measured(key: str) -> bool:
    """Wall time, throughput and memory: facts about the machine, not about the run."""
    return key.endswith(("_s", "_per_s", "_per_sec")) or key.startswith("mem/")


def _rl_args(out: Path, name: str) -> list[str]:
    config = out / "rl.yaml"
    out.mkdir(parents=True, exist_ok=True)
    config.write_text("model:\n  name: tiny-random-llama\nenv:\n  id: test-length-v0\n")
    return [
        "train",
        "rl",
        "--config",
        str(config),
        "train.steps=7",
        "train.checkpoint_every=1",
        "train.keep_checkpoints=2",
        f"train.output_dir={out}",
        f"train.run_name={name}",
        "algo.group_size=4",
        "algo.kl_coef=0.05",
        "sampling.max_new_tokens=6",
        "sampling.temperature=1.0",
        "optim.lr=1e-3",
        "eval.episodes=4",
        "eval.every=3",
    ]


def _pretrain_args(out: Path, name: str) -> list[str]:
    settings = {
        "model.seq_len": 32,
        "data.vocab_size": 512,
        "data.max_train_tokens": 4096,
        "train.batch_size": 4,
        "train.micro_batch_size": 2,
        "train.max_steps": 8,
        "optim.warmup_steps": 1,
        "train.eval_every": 3,
        "train.eval_windows": 8,
        "train.checkpoint_every": 1,
        "train.keep_checkpoints": 2,
        "train.output_dir": str(out),
        "train.run_name": name,
        "method.name": "relora",
        "method.relora.reset_every": 3,
        "method.relora.restart_warmup_steps": 1,
    }
    config = str(ROOT / "configs" / "pretrain_tiny.yaml")
    return ["pretrain", "--config", config, *[f"{k}={v}" for k, v in settings.items()]]


def _launch(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(TESTS), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after(process: subprocess.Popen, checkpoint: Path, delay: float) -> bool:
    """SIGKILL ``process`` ``delay`` seconds after ``checkpoint`` appears; False if it ended
    first (the point fell after the end of the run)."""
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"{checkpoint} never appeared"
        time.sleep(0.01)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return True


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not _measured(k)} for row in rows]


def _leftovers(run_dir: Path) -> list[str]:
    """Hidden entries (the temporary files and folders of atomic writes) anywhere in the run."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".*"))


def _killed_and_resumed(args, command: list[str], out: Path, steps: int, seed: int) -> Path:
    """Run ``args`` into ``out/killed``, SIGKILLed at three seeded points, resumed after each."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, steps), 3))
    run_dir = out / "killed"
    process = _launch(args(out, "killed"))
    kills = 0
    for step in points:
        checkpoint = run_dir / "checkpoints" / f"step-{step:06d}"
        if not _kill_after(process, checkpoint, rng.uniform(0.0, 1.5)):
            break
        kills += 1
        process = _launch([*command, "--resume", str(run_dir)])
    _finish(process)
    assert kills >= 1, "no kill landed inside the run; the test proves nothing"
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,command,steps",
    [(_rl_args, ["train", "rl"], 7), (_pretrain_args, ["pretrain"], 8)],
    ids=["rl", "pretrain"],
)
def test_runs_killed_at_random_points_resume_to_the_same_metrics(tmp_path, args, command, steps):
    whole = _launch(args(tmp_path, "whole"))
    _finish(whole)
    expected = _metrics(tmp_path / "whole")
    assert len(expected) == steps
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        run_dir = _killed_and_resumed(args, command, out, steps, seed)
        resumed = _metrics(run_dir)
        assert [r["step"] for r in resumed] == list(range(1, steps + 1))
        for got, want in zip(resumed, expected, strict=True):
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (seed, key)
        assert _leftovers(run_dir) == []

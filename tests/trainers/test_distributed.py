"""Two gloo processes under torchrun train exactly like one process on the same data."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.distributed import World

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_update import run  # noqa: E402
from dist_update import torchrun as _torchrun  # noqa: E402


@pytest.mark.parametrize("algo", ["grpo", "reinforce_pp"])
def test_two_gloo_processes_equal_one_process(tmp_path, algo):
    out = tmp_path / "rank0.pt"
    done = _torchrun([str(HERE / "dist_update.py"), str(out), algo])
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(out, weights_only=False)
    assert two["world"] == 2
    stats, grads, weights = run(World(), algo)  # one process, all four groups, 2 micro-batches
    assert two["stats"]["loss"] == pytest.approx(stats["loss"], rel=1e-5, abs=1e-7)
    assert two["stats"]["grad_norm"] == pytest.approx(stats["grad_norm"], rel=1e-5)
    assert stats["grad_norm"] > 0
    assert two["grads"].keys() == grads.keys()
    for key, value in grads.items():
        torch.testing.assert_close(two["grads"][key], value, atol=1e-7, rtol=1e-4)
    for key, value in weights.items():  # Adam amplifies near-zero gradients: lr is 1e-3
        torch.testing.assert_close(two["weights"][key], value, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_assay_train_rl_nproc_2_runs_the_job_on_two_processes(tmp_path):
    args = [
        sys.executable, "-m", "assay.cli", "train", "rl", "--nproc", "2", "--config", str(HERE.parents[1] / "configs" / "codenames_guess.yaml"),
        "model.name=tiny-random-llama",
        "train.steps=2", "algo.group_size=2", "algo.prompts_per_step=2", "sampling.max_new_tokens=4",
        f"train.output_dir={tmp_path}", "train.run_name=ddp", "eval.episodes=2", "eval.every=1",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Run directory:") == 1  # only rank 0 talks
    run_dir = tmp_path / "ddp"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # rank 0 writes, once per step
    import json

    first = json.loads(lines[0])
    assert "eval/reward_mean" in first and first["completion_len"] > 0
    assert (run_dir / "checkpoints" / "step-000002").exists()
    assert (run_dir / "summary.json").exists()

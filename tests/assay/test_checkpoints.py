"""Trainer state from a run directory is data, never code: a crafted pickle is refused before it
can run anything, on every command that reads one."""

import os

import pytest
import torch

from assay.checkpoints import STATE_FILE, load_trainer_state
from assay.errors import CheckpointError


class _RunsACommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _crafted(folder, sentinel):
    folder.mkdir(parents=True)
    torch.save({"step": 3, "optimizer": _RunsACommand(f"touch {sentinel}")}, folder / STATE_FILE)
    return folder


def test_a_crafted_trainer_state_is_refused_and_runs_nothing(tmp_path):
    sentinel = tmp_path / "pwned"
    checkpoint = _crafted(tmp_path / "step-000003", sentinel)
    with pytest.raises(CheckpointError, match=r"more than tensors and numbers \(posix.system\)"):
        load_trainer_state(checkpoint)
    assert not sentinel.exists()


def test_a_real_state_still_loads(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = tmp_path / "step-000001"
    folder.mkdir()
    state = {"step": 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": torch.get_rng_state()}  # fmt: skip
    torch.save(state, folder / STATE_FILE)
    loaded = load_trainer_state(folder)
    assert loaded["step"] == 1 and torch.equal(loaded["rng"], state["rng"])
    assert torch.equal(
        loaded["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"]
    )


def test_a_truncated_state_is_a_clear_error(tmp_path):
    folder = tmp_path / "step-000001"
    folder.mkdir()
    (folder / STATE_FILE).write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(CheckpointError, match="not a readable trainer state"):
        load_trainer_state(folder)


@pytest.mark.parametrize("command", ["pretrain", "train rl"])
def test_every_command_that_resumes_refuses_it(tmp_path, command, capsys):
    from assay.cli import main

    sentinel = tmp_path / "pwned"
    run = tmp_path / "run"
    _crafted(run / "checkpoints" / "step-000003", sentinel)
    (run / "config.yaml").write_text("{}\n")
    args = {"pretrain": ["pretrain", "--resume", str(run)],
            "train rl": ["train", "rl", "--resume", str(run)]}[command]  # fmt: skip
    assert main(args) != 0
    assert "more than tensors and numbers" in capsys.readouterr().err
    assert not sentinel.exists()


def test_partial_checkpoint_folders_of_a_killed_save_are_swept(tmp_path):
    from assay.checkpoints import latest_checkpoint

    complete = tmp_path / "checkpoints" / "step-000002"
    complete.mkdir(parents=True)
    torch.save({"step": 2}, complete / STATE_FILE)
    partial = tmp_path / "checkpoints" / ".step-000004-k1ll3d"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 1024)
    assert latest_checkpoint(tmp_path) == complete
    assert not partial.exists() and complete.exists()


def test_every_leftover_of_a_killed_save_is_swept_and_a_moved_aside_folder_put_back(tmp_path):
    from assay.checkpoints import latest_checkpoint

    complete = tmp_path / "checkpoints" / "step-000002"
    complete.mkdir(parents=True)
    torch.save({"step": 2}, complete / STATE_FILE)
    # killed between moving the old best aside and renaming the new one in
    (tmp_path / "checkpoints" / ".best-stale").mkdir()
    (tmp_path / "checkpoints" / ".best-stale" / STATE_FILE).write_bytes(b"best")
    leftovers = [
        tmp_path / "checkpoints" / ".best-a8f3kq1z",
        tmp_path / ".final-0d9xk2mm",
        tmp_path / "checkpoints" / ".step-000002-stale",
    ]
    for path in leftovers:
        path.mkdir()
    (tmp_path / ".summary.json-x81kd0qq").write_text("{")
    (tmp_path / ".notes").write_text("a user's file, not a save's")
    assert latest_checkpoint(tmp_path) == complete
    assert (tmp_path / "checkpoints" / "best" / STATE_FILE).read_bytes() == b"best"
    assert not any(path.exists() for path in leftovers)
    assert not (tmp_path / ".summary.json-x81kd0qq").exists()
    assert (tmp_path / ".notes").exists()


def test_keeping_no_checkpoint_is_refused(tmp_path):
    from assay.checkpoints import save_checkpoint

    with pytest.raises(CheckpointError, match="keep must be a whole number >= 1"):
        save_checkpoint(tmp_path, 1, None, None, {}, keep=-1)

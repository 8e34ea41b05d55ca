"""Every user error is one sentence (what was wrong, the value, the fix) and leaves nothing
behind: no traceback, no run folder, no manifest that refuses the next, correct command."""

from pathlib import Path

import pytest

from assay.cli import main

ROOT = Path(__file__).resolve().parents[2]
RL = str(ROOT / "configs" / "codenames_guess.yaml")


def _run(args, capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_a_config_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_bytes(b"train:\n  steps: 2\n  name: caf\xe9\n")
    code, err = _run(["train", "rl", "--config", str(config)], capsys)
    assert code != 0 and "is not UTF-8 text (byte" in err


def test_a_directory_given_as_config(tmp_path, capsys):
    code, err = _run(["train", "rl", "--config", str(tmp_path)], capsys)
    assert code != 0 and "is a directory; pass a YAML file" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.best_metric=accuracy", "eval.best_metric 'accuracy' is not an eval metric"),
        ("model.device=cuda", "needs a CUDA GPU"),
        ("sampling.max_new_tokens=100000000", "max_new_tokens must be in [1, 131,072]"),
    ],
)
def test_rl_config_errors_before_any_run_folder(tmp_path, capsys, monkeypatch, override, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    out = tmp_path / "runs"
    code, err = _run(["train", "rl", "--config", RL, f"train.output_dir={out}", override], capsys)
    assert code != 0 and message in err
    assert not out.exists() or list(out.iterdir()) == []


def test_a_run_folder_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = _run(["train", "rl", "--config", RL, f"train.output_dir={blocker}/runs",
                      "train.steps=1", "model.name=tiny-random-llama"], capsys)  # fmt: skip
    assert code != 0 and "Cannot create the run folder" in err


@pytest.mark.parametrize("value", ["-5", "0", "2000000"])
def test_rollout_refuses_a_bad_token_budget_and_leaves_no_manifest(tmp_path, capsys, value):
    out = tmp_path / "rollouts"
    with pytest.raises(SystemExit) as exit_info:
        main(["rollout", "--env", "math-gsm8k-v0", "--out", str(out), "--max-new-tokens", value])
    assert exit_info.value.code == 2
    assert "argument --max-new-tokens: must be" in capsys.readouterr().err
    assert not out.exists()


def test_resuming_a_run_on_a_remote_env_needs_its_server_confirmed(tmp_path, capsys):
    run = tmp_path / "downloaded"
    run.mkdir()
    (run / "config.yaml").write_text("env:\n  id: openenv:http://203.0.113.9:8000\n")
    code, err = _run(["train", "rl", "--resume", str(run)], capsys)
    assert code != 0 and "env.id=openenv:http://203.0.113.9:8000" in err
    code, err = _run(["train", "rl", "--resume", str(run), "env.id=openenv:http://203.0.113.9:8000"],
                     capsys)  # fmt: skip
    assert code != 0 and "sends data off this machine" not in err


def test_resuming_a_run_that_sends_data_elsewhere_needs_confirmation(tmp_path, capsys):
    run = tmp_path / "downloaded"
    run.mkdir()
    (run / "config.yaml").write_text(
        "env:\n  id: codenames-clue-v0\n  kwargs:\n    judge: api\n    judge_options:\n"
        "      base_url: https://judge.example.com/v1\n      model: m\n"
        "      key_env: OPENAI_API_KEY\n"
    )
    code, err = _run(["train", "rl", "--resume", str(run)], capsys)
    assert code != 0
    assert "sends data off this machine" in err and "https://judge.example.com/v1" in err
    assert "key_env=OPENAI_API_KEY" in err
    # named again on the command line, or trusted: the check passes (and the run, which has
    # no checkpoint, then fails for that reason instead)
    confirmed = ["env.kwargs.judge_options.base_url=https://judge.example.com/v1",
                 "env.kwargs.judge_options.key_env=OPENAI_API_KEY"]  # fmt: skip
    for extra in (confirmed, ["--trust-run-config"]):
        code, err = _run(["train", "rl", "--resume", str(run), *extra], capsys)
        assert code != 0 and "sends data off this machine" not in err

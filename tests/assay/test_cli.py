import json

from assay.cli import main


def test_envs_list_and_check(capsys):
    assert main(["envs", "list"]) == 0
    assert "codenames-guess-v0" in capsys.readouterr().out
    assert main(["envs", "check", "codenames-guess-v0", "answer_format=tagged"]) == 0
    assert "codenames-guess-v0: 6 passed, 0 failed" in capsys.readouterr().out


def test_unknown_env_id_is_one_error_line(capsys):
    assert main(["envs", "check", "codenames-guess-v9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("assay: error: No environment is registered as 'codenames-guess-v9'.")
    assert err.count("\n") == 1


def test_malformed_config_fails_before_any_work(tmp_path, capsys):
    code = main(
        [
            "train",
            "rl",
            "--config",
            "configs/codenames_guess.yaml",
            "algo.group_size=1",
            "train.stpes=2",
            f"train.output_dir={tmp_path}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "algo.group_size must be >= 2" in err and "train.stpes: unknown key" in err
    assert list(tmp_path.iterdir()) == []  # no run directory was created


def test_unknown_model_fails_before_a_run_directory_exists(tmp_path, capsys):
    code = main(
        [
            "train",
            "rl",
            "--config",
            "configs/codenames_guess.yaml",
            "model.name=no-such-model",
            f"train.output_dir={tmp_path}",
        ]
    )
    assert code == 2
    assert "Could not load model 'no-such-model'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_train_and_resume_from_the_cli(tmp_path, capsys):
    args = [
        "train",
        "rl",
        "--config",
        "configs/codenames_guess.yaml",
        "model.name=tiny-random-llama",
        "algo.group_size=2",
        "sampling.max_new_tokens=4",
        "eval.episodes=2",
        "train.max_minutes=null",
        f"train.output_dir={tmp_path}",
        "train.steps=1",
    ]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    assert main(["train", "rl", "--resume", str(run), "train.steps=2"]) == 0
    out = capsys.readouterr().out
    assert "Resuming" in out and "from step 1" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval_trained"]["valid_rate"] >= 0.0
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000002"]
    assert len((run / "samples.jsonl").read_text().splitlines()) == 2


def test_eval_env_reports_format_skill_and_the_exact_chance(tmp_path, capsys):
    import envs

    args = ["eval", "env", "codenames-guess-v0", "n_neutral=[1, 2]", "--model",
            "tiny-random-llama", "--episodes", "5", "--max-new-tokens", "4",
            "--output-dir", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    env = envs.make("codenames-guess-v0", n_neutral=[1, 2])
    chances = []
    for i in range(5):
        env.reset(seed=1_000_000_000 + i)
        chances.append(env.chance_reward())
    assert f"chance (random valid)       {sum(chances) / 5:+.3f}" in out
    (run,) = tmp_path.iterdir()
    saved = json.loads((run / "eval.json").read_text())
    assert [e["seed"] for e in saved["episodes"]] == [1_000_000_000 + i for i in range(5)]
    assert saved["metrics"]["valid_rate"] == sum(e["valid"] for e in saved["episodes"]) / 5

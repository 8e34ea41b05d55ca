"""verl / SkyRL exports: the files load with ``datasets`` in the trainers' schemas, and verl's
``compute_score`` gives exactly the env's own reward for any answer."""

import json

import datasets
import pytest

import envs
from assay.cli import main
from envs.export import compute_score

VERL = {"data_source", "prompt", "ability", "reward_model", "extra_info"}
SKYRL = {"data_source", "prompt", "env_class", "reward_spec", "extra_info"}


def _load(path):
    return datasets.load_dataset("parquet", data_files=str(path))["train"]


def test_a_verl_export_of_gsm8k_scores_every_answer_as_the_env_does(tmp_path):
    assert main(["envs", "export", "math-gsm8k-v0", "--n", "12", "--out", str(tmp_path),
                 "--format", "verl", "--seed", "3"]) == 0  # fmt: skip
    train, validation = _load(tmp_path / "train.parquet"), _load(tmp_path / "validation.parquet")
    assert set(train.column_names) == VERL and (train.num_rows, validation.num_rows) == (11, 1)
    assert not {r["extra_info"]["seed"] for r in train} & {validation[0]["extra_info"]["seed"]}
    env = envs.make("math-gsm8k-v0")
    rewards = []
    for row in train:
        prompt, info = env.reset(seed=row["extra_info"]["seed"])
        assert row["prompt"] == prompt and row["reward_model"]["style"] == "rule"
        for answer in (f"The answer is \\boxed{{{info['gold']}}}", "\\boxed{-12345}", "no idea"):
            env.reset(seed=row["extra_info"]["seed"])
            want = env.step(answer)[1]
            got = compute_score(row["data_source"], answer, row["reward_model"]["ground_truth"],
                                row["extra_info"])  # fmt: skip
            assert got == pytest.approx(want)
            rewards.append(got)
    assert max(rewards) > min(rewards)  # right and wrong answers were told apart


def test_a_skyrl_export_of_codenames_boards_rebuilds_each_board(tmp_path):
    assert main(["codenames", "export", "--task", "guess", "--n", "8", "--out", str(tmp_path),
                 "--format", "skyrl", "difficulty=far"]) == 0  # fmt: skip
    train = _load(tmp_path / "train.parquet")
    assert set(train.column_names) == SKYRL and train[0]["env_class"] == "assay"
    for row in train:
        truth = json.loads(row["reward_spec"]["ground_truth"])
        env = envs.make(truth["env_id"], **truth["env_kwargs"])
        _, info = env.reset(seed=truth["seed"])
        answer = "Guesses: " + ", ".join(info["targets"][: info["max_guesses"]])
        env.reset(seed=truth["seed"])
        want = env.step(answer)[1]
        assert compute_score(row["data_source"], answer, row["reward_spec"]["ground_truth"]) == want
        assert want > 0  # naming the targets is rewarded


def test_a_ground_truth_that_is_not_an_assay_episode_is_refused():
    with pytest.raises(ValueError, match="not an assay episode"):
        compute_score("gsm8k", "42", "42")
    with pytest.raises(ValueError, match="not an assay episode"):
        compute_score("x", "42", json.dumps({"seed": 1}))


def test_a_rollout_in_verl_and_skyrl_schemas_keeps_each_answer_and_its_reward(tmp_path):
    """``assay rollout --format``: every sampled answer rides in ``extra_info`` with the reward
    the env gave it, which verl's ``compute_score`` gives again from the row's ground truth."""
    for fmt, columns, truth in (("verl", VERL, "reward_model"), ("skyrl", SKYRL, "reward_spec")):
        out = tmp_path / fmt
        assert main(["rollout", "--model", "tiny-random-llama", "--env", "codenames-guess-v0",
                     "--n", "3", "--samples", "2", "--max-new-tokens", "4", "--temperature",
                     "1.0", "--out", str(out), "--format", fmt, "difficulty=far"]) == 0  # fmt: skip
        rows = _load(out / fmt / "train.parquet")
        rollout = datasets.load_from_disk(str(out / "dataset"))
        assert set(rows.column_names) == columns and rows.num_rows == len(rollout) == 6
        assert [r["extra_info"]["response"] for r in rows] == rollout["completion"]
        assert [(r["extra_info"]["seed"], r["extra_info"]["sample"]) for r in rows] == list(
            zip(rollout["seed"], rollout["sample"], strict=True)
        )
        for row in rows:
            info = row["extra_info"]
            score = compute_score(row["data_source"], info["response"], row[truth]["ground_truth"])
            assert score == info["reward"]
            # A right answer on the same row's board scores as the env says, too.
            env = envs.make("codenames-guess-v0", difficulty="far")
            _, hidden = env.reset(seed=info["seed"])
            right = "Guesses: " + ", ".join(hidden["targets"][: hidden["max_guesses"]])
            want = env.step(right)[1]
            assert compute_score(row["data_source"], right, row[truth]["ground_truth"]) == want > 0


def test_a_rollout_of_a_game_of_several_agents_is_refused_before_any_model_loads(tmp_path, capsys):
    code = main(["rollout", "--model", "no-such-model", "--env", "codenames-game-v0", "--out",
                 str(tmp_path), "--format", "verl"])  # fmt: skip
    assert code == 2 and "a game of 4 agents" in capsys.readouterr().err


def test_rollout_rows_of_several_turns_are_refused_with_the_reason():
    from envs.export import rollout_rows

    rows = [{"prompt": [], "seed": 1, "sample": 0, "agent": "", "completion": "a\n\nb",
             "reward": 1.0, "turns": 2}]  # fmt: skip
    with pytest.raises(ValueError, match="up to 2 turns"):
        rollout_rows(datasets.Dataset.from_list(rows), "some-env-v0", {})

"""The reward-model loop from the command line, on the tiny model: data -> ORM and PRM ->
best-of-N table -> RL with the learned rewards (in process and as a Ray actor)."""

import json

import pytest

from assay.cli import main


@pytest.fixture(scope="module", autouse=True)
def _ray_stopped_after():
    """Commands here start a local Ray cluster (actors, pools); later modules start their own."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    policy = ["--policy", "tiny-random-llama", "--max-new-tokens", "12"]
    assert main(["rm", "data", *policy, "--problems", "4", "--samples", "2",
                 "--labels", "arith", "--out", str(out / "data")]) == 0  # fmt: skip
    for kind, data in (("orm", "orm"), ("prm", "prm_arith")):
        assert main(["rm", "train", "--kind", kind, "--backbone", "tiny-random-llama", "--data",
                     str(out / "data" / data), "--epochs", "1", "--holdout", "0.5",
                     "--out", str(out / kind)]) == 0  # fmt: skip
    return out


def test_rm_train_writes_a_loadable_model_with_its_history(trained):
    from rewards.rm import load_reward_model

    summary = json.loads((trained / "orm" / "train_summary.json").read_text())
    assert summary["train_rows"] + summary["heldout_rows"] == 8 and len(summary["history"]) == 1
    assert load_reward_model(trained / "prm").kind == "prm"


def test_rm_train_refuses_data_of_the_other_kind(trained, capsys):
    code = main(["rm", "train", "--kind", "prm", "--backbone", "tiny-random-llama",
                 "--data", str(trained / "data" / "orm"), "--out", str(trained / "x")])  # fmt: skip
    assert code == 2 and "a PRM trains on (problem, steps, labels) rows" in capsys.readouterr().err


def test_rm_train_keeps_the_datas_step_splitter(trained, capsys):
    code = main(["rm", "train", "--kind", "prm", "--backbone", "tiny-random-llama", "--data",
                 str(trained / "data" / "prm_arith"), "--step-split", "sentence",
                 "--out", str(trained / "y")])  # fmt: skip
    assert code == 2
    assert "split into steps with 'newline'" in capsys.readouterr().err


def test_eval_rerank_table_and_reuse_of_samples(trained, capsys):
    out = trained / "rerank"
    args = ["eval", "rerank", "--policy", "tiny-random-llama", "--problems", "2", "--n", "2",
            "--max-new-tokens", "8", "--orm", str(trained / "orm"), "--prm", str(trained / "prm"),
            "--aggregations", "min,prod", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    (run,) = out.iterdir()
    rows = json.loads((run / "rerank.json").read_text())["rows"]
    selectors = {r["selector"] for r in rows}
    assert selectors == {"oracle", "majority", "rank:orm", "weighted:orm", "rank:prm-min",
                         "weighted:prm-min", "rank:prm-prod", "weighted:prm-prod"}  # fmt: skip
    assert {r["n"] for r in rows} == {1, 2} and (run / "plots" / "best_of_n.png").exists()
    assert (
        main([*args[:-1], str(trained / "rerank2"), "--samples-from", str(run / "samples.jsonl")])
        == 0
    )
    (run2,) = (trained / "rerank2").iterdir()
    assert not (run2 / "samples.jsonl").exists()  # nothing was sampled again
    assert json.loads((run2 / "rerank.json").read_text())["rows"] == rows
    swapped = ["--orm" if a == "--prm" else a for a in args]
    assert main(swapped) == 2 and "is a saved PRM, not a ORM" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["reward_model.aggregate=prod", "reward_model.grader_weight=0.5"],
        ["reward_model.aggregate=per_step", "algo.name=ppo", "reward_model.actor=true"],
    ],
    ids=["grpo-prm-prod", "ppo-dense-prm-on-a-ray-actor"],
)
def test_rl_with_a_learned_reward(trained, tmp_path, extra):
    code = main(["train", "rl", "--config", "configs/math_gsm8k_rm.yaml",
                 "model.name=tiny-random-llama", f"reward_model.path={trained / 'prm'}",
                 "train.steps=1", "algo.group_size=2", "algo.prompts_per_step=1",
                 "sampling.max_new_tokens=12", "eval.episodes=1", "eval.compare_base=false",
                 f"train.output_dir={tmp_path}", "train.run_name=r", *extra])  # fmt: skip
    assert code == 0
    (record,) = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert {"rm_score", "grader_reward", "correct"} <= set(record)
    assert 0.0 <= record["rm_score"] <= 1.0
    from trainers.rm_actor import _SCORERS

    assert not _SCORERS  # the run released its reward model (and any actor's CPUs)


@pytest.mark.slow
def test_rm_data_through_a_ray_rollout_pool(tmp_path):
    import datasets

    assert main(["rm", "data", "--policy", "tiny-random-llama", "--max-new-tokens", "6",
                 "--problems", "3", "--samples", "2", "--replicas", "2", "--batch-size", "2",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    orm = datasets.load_from_disk(str(tmp_path / "orm"))
    assert [(r["index"], r["sample"]) for r in orm] == [(i, s) for i in range(3) for s in range(2)]
    assert len(datasets.load_from_disk(str(tmp_path / "prm_arith"))) == 6

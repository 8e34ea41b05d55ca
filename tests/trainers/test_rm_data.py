"""Reward-model data: Monte-Carlo step labels from a scripted policy of known success
probability, and the resumable sample -> ORM/PRM datasets pipeline."""

import json
import random

import datasets
import pytest

import envs
from assay.models import load_tokenizer_and_dir
from trainers.engines.base import Completion, Sampling
from trainers.rm_data import generate_rm_data, mc_step_labels, sample_solutions

TOKENIZER = load_tokenizer_and_dir("tiny-random-llama")[0]


class ScriptedPolicy:
    """Continues a prefix that holds k steps correctly with probability ``p[k]``; as a solver
    (no steps yet) it answers with ``solutions`` in turn."""

    def __init__(self, p, gold="7", solutions=(), seed=0):
        self.p, self.gold, self.solutions = p, gold, list(solutions)
        self.rng = random.Random(seed)
        self.requests = 0
        self.seen = []

    def generate(self, prompts, sampling):
        self.requests += len(prompts)
        out = []
        for prompt in prompts:
            ids = prompt if isinstance(prompt, list) and isinstance(prompt[0], int) else [0]
            self.seen.append(TOKENIZER.decode(ids))
            k = self.seen[-1].count("STEP")
            group = []
            for _ in range(sampling.n):
                if k == 0 and self.solutions:
                    text = self.solutions.pop(0)
                else:
                    right = self.rng.random() < self.p[k]
                    text = f"The answer is {self.gold if right else 0}."
                group.append(Completion(text, ids, [1], [0.0], "stop"))
            out.append(group)
        return out

    def close(self):
        pass


def test_mc_labels_estimate_the_policys_success_probability():
    p = {1: 0.8, 2: 0.3, 3: 0.0}
    policy = ScriptedPolicy(p)
    steps = ["STEP one.", "STEP two.", "STEP three.", "STEP four, answer 7."]
    messages = [{"role": "user", "content": "What is 3 + 4?"}]
    items = [(messages, "\n".join(steps), "7", True), (messages, "\n".join(steps[:2]), "7", False)]
    labels = mc_step_labels(policy, TOKENIZER, items, m=400, sampling=Sampling(max_new_tokens=8))
    soft, hard = labels[0].soft, labels[0].hard
    assert soft[:3] == pytest.approx([0.8, 0.3, 0.0], abs=0.07)
    assert hard == [1.0, 1.0, 0.0, 1.0]  # the last step is the solution's own correctness
    assert labels[1].soft[0] == pytest.approx(0.8, abs=0.07) and labels[1].hard == [1.0, 0.0]
    assert policy.requests == 3 + 1  # one request per prefix, m samples each


def test_mc_labels_with_few_rollouts_are_fractions_of_m():
    policy = ScriptedPolicy({1: 0.5})
    messages = [{"role": "user", "content": "q"}]
    (labels,) = mc_step_labels(policy, TOKENIZER, [(messages, "STEP a. STEP b", "7", False)],
                               m=4, sampling=Sampling(), split="sentence")  # fmt: skip
    assert labels.soft[0] in (0.0, 0.25, 0.5, 0.75, 1.0) and labels.soft[1] == 0.0
    assert policy.seen[0].endswith("assistant\nSTEP a.")  # the policy's own text, as written
    assert labels.hard[0] == float(labels.soft[0] > 0)


def test_generate_rm_data_writes_orm_and_prm_datasets(tmp_path):
    env = envs.make("math-gsm8k-v0", split="train")
    golds = [env.problems[i].answer for i in range(3)]
    solutions = []
    for g in golds:
        solutions += [f"STEP 2 + 2 = 4.\nThe answer is {g}.", "STEP 2 + 2 = 5.\nThe answer is 0."]
    policy = ScriptedPolicy({1: 1.0}, gold=golds[0], solutions=solutions)
    paths = generate_rm_data(
        policy, TOKENIZER, env, tmp_path, problems=3, sampling=Sampling(n=2, seed=1),
        labels=("arith", "mc"), mc_rollouts=2, batch_size=2,
    )  # fmt: skip
    orm = datasets.load_from_disk(str(paths["orm"]))
    assert len(orm) == 6 and orm["correct"] == [True, False] * 3
    assert orm[0]["problem"] == env.problems[0].question
    arith = datasets.load_from_disk(str(paths["prm_arith"]))
    assert arith[0]["labels"] == [1.0, 1.0] and arith[1]["labels"] == [0.0, 0.0]
    mc = datasets.load_from_disk(str(paths["prm_mc"]))
    assert mc[1]["steps"] == ["STEP 2 + 2 = 5.", "The answer is 0."]
    assert mc[1]["labels"] == [1.0, 0.0]  # the policy always recovers from the first step


def test_sampling_resumes_after_the_last_whole_problem(tmp_path):
    env = envs.make("math-gsm8k-v0", split="train")
    first = sample_solutions(ScriptedPolicy({0: 1.0}), env, tmp_path, 3, Sampling(n=2), 1)
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + '\n{"index": 1, "cut')  # killed mid-problem 1
    policy = ScriptedPolicy({0: 1.0})
    again = sample_solutions(policy, env, tmp_path, 3, Sampling(n=2), 1)
    assert policy.requests == 2  # problems 1 and 2 only
    assert [(r["index"], r["sample"]) for r in again] == [(r["index"], r["sample"]) for r in first]
    assert all(json.loads(x) for x in path.read_text().splitlines())


def test_data_made_with_other_settings_is_not_mixed_in(tmp_path):
    from assay.errors import ConfigError

    env = envs.make("math-gsm8k-v0", split="train")
    args = (TOKENIZER, env, tmp_path, 1)
    generate_rm_data(ScriptedPolicy({0: 1.0}), *args, sampling=Sampling(n=2, temperature=0.7))
    with pytest.raises(ConfigError, match="sampling"):
        generate_rm_data(ScriptedPolicy({0: 1.0}), *args, sampling=Sampling(n=2, temperature=1.0))


def test_reference_solutions_join_as_correct_rows_without_mc_labels(tmp_path):
    env = envs.make("math-gsm8k-v0", split="train")
    paths = generate_rm_data(
        ScriptedPolicy({0: 0.0, 1: 0.0}, gold="-1"), TOKENIZER, env, tmp_path, problems=2,
        sampling=Sampling(n=1), labels=("arith", "mc"), mc_rollouts=1, include_reference=True,
    )  # fmt: skip
    orm = datasets.load_from_disk(str(paths["orm"]))
    refs = [r for r in orm if r["sample"] == -1]
    assert [r["index"] for r in refs] == [0, 1] and all(r["correct"] for r in refs)
    assert refs[0]["solution"].endswith(f"The answer is {env.problems[0].answer}.")
    assert "<<" not in refs[0]["solution"]  # calculator annotations removed
    arith = datasets.load_from_disk(str(paths["prm_arith"]))
    assert all(set(r["labels"]) == {1.0} for r in arith if r["sample"] == -1)
    assert len(datasets.load_from_disk(str(paths["prm_mc"]))) == 2


def test_mc_labels_on_disk_survive_a_smaller_limit(tmp_path):
    env = envs.make("math-gsm8k-v0", split="train")
    run = lambda limit: generate_rm_data(  # noqa: E731
        ScriptedPolicy({0: 1.0, 1: 0.5}, solutions=["STEP x\nThe answer is 1."] * 4), TOKENIZER,
        env, tmp_path, problems=2, sampling=Sampling(n=2), labels=("mc",), mc_rollouts=2,
        mc_limit=limit,
    )  # fmt: skip
    run(3)
    assert len((tmp_path / "mc.jsonl").read_text().splitlines()) == 3
    assert len(datasets.load_from_disk(str(run(1)["prm_mc"]))) == 1
    assert len((tmp_path / "mc.jsonl").read_text().splitlines()) == 3  # nothing deleted
    policy = ScriptedPolicy({1: 0.5})
    generate_rm_data(policy, TOKENIZER, env, tmp_path, problems=2, sampling=Sampling(n=2),
                     labels=("mc",), mc_rollouts=2, mc_limit=4)  # fmt: skip
    assert policy.requests == 1  # only the fourth solution was labelled

"""GSM8K / MATH envs: prompts, problem selection, rewards, options and splits."""

import pytest

import envs
from assay.errors import ConfigError
from envs.math.data import load_problems, strip_calculator


def test_zero_shot_chat_prompt_is_instruction_then_problem():
    env = envs.make("math-gsm8k-v0", split="test")
    observation, info = env.reset(options={"index": 0})
    assert observation == [
        {
            "role": "user",
            "content": "Solve the problem step by step, then finish with 'The answer is N.' "
            "where N is the final answer.\n\n" + load_problems("gsm8k", "test")[0].question,
        }
    ]
    assert (info["gold"], info["problem_id"], info["index"]) == ("18", "gsm8k/test/0", 0)


def test_few_shot_exemplars_come_from_train_and_are_never_posed():
    env = envs.make("math-gsm8k-v0", few_shot=2, system_prompt="Be brief.")
    observation, _ = env.reset(seed=3)
    roles = [m["role"] for m in observation]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    train = load_problems("gsm8k", "train")
    assert observation[2]["content"] == strip_calculator(train[0].solution) + "\nThe answer is 72."
    assert "<<" not in observation[2]["content"]
    exemplar_questions = {p.question for p in train[:8]}
    assert not exemplar_questions & {p.question for p in env.problems}


def test_plain_prompt_style_and_boxed_answers_for_math():
    env = envs.make("math-math500-v0", few_shot=1, prompt_style="plain")
    observation, info = env.reset(options={"index": 0})
    (message,) = observation
    assert message["content"].startswith("Solve the problem step by step, then give the final")
    assert "Answer: Adding 7 to both sides" in message["content"]
    assert message["content"].endswith("Question: " + env.problems[0].question + "\nAnswer:")
    assert info["gold"] == r"\left( 3, \frac{\pi}{2} \right)"


def test_train_and_test_never_mix():
    for dataset in ("gsm8k", "math"):
        train = {p.question for p in load_problems(dataset, "train")}
        test = {p.question for p in load_problems(dataset, "test")}
        assert train and test and not train & test
    assert len(load_problems("math", "test")) == 500
    assert len(load_problems("gsm8k", "test")) == 1319


@pytest.mark.parametrize(
    ("answer", "reward", "format_ok"),
    [
        ("3 + 4 = 7. The answer is 18.", 1.0, 1.0),
        ("Eggs: 16 - 3 - 4 = 9, 9 * 2 = 18.", 1.0, 0.0),  # right by the last-number fallback
        ("So \\boxed{18}", 1.0, 0.0),
        ("The answer is 17.", 0.0, 1.0),
        ("no idea", 0.0, 0.0),
    ],
)
def test_reward_and_format(answer, reward, format_ok):
    env = envs.make("math-gsm8k-v0", split="test")
    env.reset(options={"index": 0})
    transcript, r, terminated, truncated, info = env.step(answer)
    assert (r, info["correct"], info["format_ok"]) == (reward, reward, format_ok)
    assert terminated and not truncated and transcript[-1]["content"] == answer


def test_format_weight_mixes_the_rewards():
    env = envs.make("math-gsm8k-v0", split="test", format_weight=0.2)
    env.reset(options={"index": 0})
    assert env.step("So \\boxed{18}")[1] == pytest.approx(0.8)
    env.reset(options={"index": 0})
    assert env.step("The answer is 17.")[1] == pytest.approx(0.2)


def test_same_seed_same_problem():
    env = envs.make("math-math-v0")
    assert env.reset(seed=7)[1]["index"] == env.reset(seed=7)[1]["index"]


@pytest.mark.parametrize(
    ("env_id", "options", "message"),
    [
        ("math-math500-v0", {"split": "train"}, "has no split 'train'"),
        ("math-gsm8k-v0", {"few_shot": 9}, "few_shot must be an int from 0 to 8"),
        ("math-math-v0", {"few_shot": 5}, "few_shot must be an int from 0 to 4"),
        ("math-gsm8k-v0", {"answer_style": "boxd"}, "Did you mean 'boxed'"),
        ("math-gsm8k-v0", {"format_weight": 1.5}, "format_weight must be a number in [0, 1]"),
        ("math-gsm8k-v0", {"source": "web"}, "source must be 'package' or 'hub'"),
    ],
)
def test_bad_options_are_config_errors(env_id, options, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        envs.make(env_id, **options)


def test_bad_index_is_a_config_error():
    env = envs.make("math-math500-v0")
    with pytest.raises(ConfigError, match=r"options\['index'\] must be an int in \[0, 500\)"):
        env.reset(options={"index": 500})


def test_hub_source_offline_fails_with_one_sentence():
    with pytest.raises(ConfigError, match="Could not load gsm8k/test from the Hugging Face hub"):
        envs.make("math-gsm8k-v0", split="test", source="hub")

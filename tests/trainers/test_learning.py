"""The learner optimises: a rewarded completion becomes more likely, an unrewarded one less."""

import copy

import torch

import envs
from assay.config import load_config
from trainers.engines.base import Completion
from trainers.logprobs import completion_logprobs
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples


def _learner(tiny_lm, **overrides):
    model, tokenizer = tiny_lm
    args = [
        f"{k}={v}" for k, v in {"optim.lr": 3e-3, "sampling.temperature": 1.0, **overrides}.items()
    ]
    return RLLearner(load_config(RLConfig, overrides=args), copy.deepcopy(model), tokenizer)


def _sequence_logprob(learner, completion):
    ids = torch.tensor([completion.prompt_ids + completion.token_ids])
    with torch.no_grad():
        lp, _ = completion_logprobs(
            learner.model, ids, torch.ones_like(ids), len(completion.token_ids)
        )
    return lp.sum().item()


def test_update_raises_the_probability_of_the_rewarded_completion(tiny_lm):
    learner = _learner(tiny_lm, **{"algo.group_size": 2})
    tokenizer = learner.tokenizer
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say yes."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    good = Completion("yes", prompt, tokenizer.encode("yes indeed"), [], "stop")
    bad = Completion("no", prompt, tokenizer.encode("no way at all"), [], "stop")
    rollout = Samples([good, bad], torch.tensor([[1.0, 0.0]]))
    before = (_sequence_logprob(learner, good), _sequence_logprob(learner, bad))
    for _ in range(5):
        learner.update(rollout)
    after = (_sequence_logprob(learner, good), _sequence_logprob(learner, bad))
    assert after[0] > before[0] + 1.0  # much more likely
    assert after[1] < before[1] - 1.0  # much less likely


def test_groups_without_reward_differences_leave_the_policy_unchanged(tiny_lm):
    learner = _learner(tiny_lm, **{"algo.group_size": 4, "sampling.max_new_tokens": 4})
    before = copy.deepcopy(learner.model.state_dict())
    env = envs.make("codenames-guess-v0")  # a random model never answers in format: all -1
    metrics = learner.step(env, step=1)
    assert metrics["reward_std"] == 0.0 and metrics["zero_std_groups"] == 1.0
    assert metrics["loss"] == 0.0
    after = learner.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

"""Multi-turn RL (``episodes.multi_turn``): each context of the learner's agent is a training row,
the env's tokens inside it are attended to but never trained on, advantages compare a seat's
episode rewards within a seed's group, and the RL job runs on the full Codenames game."""

import copy
import json

import pytest
import torch

import envs
from assay.config import load_config
from assay.errors import ConfigError
from trainers.algos import group_advantages
from trainers.logprobs import grouped_forward
from trainers.rl import batch as batching
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl
from trainers.rl.learner import RLLearner
from trainers.rl.samples import train_seed


class Duo(envs.TextEnv):
    """Agent ``a`` speaks, scripted ``b`` replies, ``a`` speaks again; ``a``'s conversation
    grows. ``a`` earns 1 when its first answer has an even number of characters, ``b`` the
    opposite."""

    possible_agents = ("a", "b")
    scripted_kinds = ("echo",)

    def scripted_policy(self, kind, agent, seed=0):
        return lambda observation, info: "fine"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.a = [{"role": "user", "content": f"Start {seed}."}]
        self.turn, self.first = 0, ""
        return list(self.a), self.make_info("a")

    def step(self, action):
        self.turn += 1
        if self.turn == 1:
            self.first = action
            self.a.append({"role": "assistant", "content": action})
            return [{"role": "user", "content": f"a said {action!r}"}], 0.0, False, False, (
                self.make_info("b"))  # fmt: skip
        if self.turn == 2:
            self.a.append({"role": "user", "content": f"b said {action!r}. Again."})
            return list(self.a), 0.0, False, False, self.make_info("a")
        win = float(len(self.first) % 2 == 0)
        info = self.make_info("", rewards={"a": win, "b": -win})
        return [], 0.0, True, False, info


@pytest.fixture
def duo():
    envs.register("test-duo-v0", Duo)
    yield
    envs.registry._REGISTRY.pop("test-duo-v0", None)


def _config(**overrides) -> RLConfig:
    base = {
        "model.name": "tiny-random-llama",
        "env.id": "test-duo-v0",
        "episodes.multi_turn": True,
        "episodes.seats.b": "echo",
        "algo.group_size": 4,
        "algo.prompts_per_step": 2,
        "sampling.temperature": 1.0,
        "sampling.max_new_tokens": 5,
        "optim.lr": 3e-3,
        "eval.episodes": 0,
    }
    base.update(overrides)
    return load_config(RLConfig, overrides=[f"{k}={v}" for k, v in base.items()])


def test_each_context_is_a_row_with_its_seats_group_advantage(duo, tiny_lm):
    model, tokenizer = tiny_lm
    learner = RLLearner(_config(), model, tokenizer)
    samples = learner.rollout.collect(Duo(), step=1)
    assert samples.group_size == 1 and len(samples.completions) == 8  # 2 seeds x 4 episodes
    assert samples.rewards.shape == (2, 4)  # agent a's episode rewards per seed
    torch.testing.assert_close(samples.advantages.view(2, 4), group_advantages(samples.rewards))
    batch = batching.pad_batch(samples.completions, 1, tokenizer.pad_token_id, learner.model.device)
    for i, c in enumerate(samples.completions):
        first = Duo().reset(seed=train_seed(learner.config, 1, i // 4))[0]
        assert c.prompt_ids == tokenizer.apply_chat_template(
            first, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        # Two answers of a's, the env's reply between them: trained on a's tokens only.
        assert 0 in c.train_mask and c.train_mask[0] == 1 and c.train_mask[-1] == 1
        assert int(batch["loss_mask"][i].sum()) == sum(c.train_mask)
        assert int(batch["completion_mask"][i].sum()) == len(c.token_ids)


def test_the_envs_tokens_get_no_gradient_and_the_policys_do(duo, tiny_lm):
    model, tokenizer = tiny_lm
    learner = RLLearner(_config(), copy.deepcopy(model), tokenizer)
    samples = learner.rollout.collect(Duo(), step=1)
    samples.advantages = torch.linspace(-1.0, 1.0, len(samples.completions))  # all nonzero
    batch = batching.pad_batch(samples.completions, 1, tokenizer.pad_token_id, learner.model.device)
    width = batch["completion_ids"].shape[1]
    captured = []

    def keep(module, inputs, output):
        hidden = inputs[0]  # the head's input: whether it makes full logits or chunked log-probs
        if hidden.requires_grad and hidden.shape[1] == width:  # the completion pass
            hidden.retain_grad()
            captured.append(hidden)

    handle = learner.model.get_output_embeddings().register_forward_hook(keep)
    try:
        learner.update(samples)
    finally:
        handle.remove()
    (hidden,) = captured
    # The state at t predicts completion token t + 1.
    grad = hidden.grad.abs().sum(-1)[:, :-1]  # (B, T_c - 1)
    trained = batch["loss_mask"][:, 1:].bool()
    assert torch.all(grad[~trained] == 0)  # the env's and the template's tokens: none at all
    assert torch.all(grad[trained] > 0)


def test_an_update_moves_each_context_the_way_its_advantage_says(duo, tiny_lm):
    model, tokenizer = tiny_lm
    learner = RLLearner(_config(), copy.deepcopy(model), tokenizer)
    samples = learner.rollout.collect(Duo(), step=1)
    samples.advantages = torch.tensor([1.0, -1.0] * 4)
    batch = batching.pad_batch(samples.completions, 1, tokenizer.pad_token_id, learner.model.device)
    mask = batch["loss_mask"].float()

    def logprob_sums():
        with torch.no_grad():
            out = grouped_forward(learner.model, batch["prompt_ids"], batch["prompt_mask"],
                                  batch["completion_ids"], batch["completion_mask"],
                                  temperature=1.0)  # fmt: skip
        return (out.logprobs * mask).sum(1)

    before = logprob_sums()
    learner.update(samples)
    change = logprob_sums() - before
    assert (change[0::2] > 0).all() and (change[1::2] < 0).all()


def test_settings_multi_turn_cannot_use_are_refused_together():
    with pytest.raises(ConfigError) as err:
        _config(**{"algo.name": "dapo"})
    message = str(err.value)
    assert "algo.dynamic_sampling: false" in message and "algo.overlong_buffer: 0" in message
    with pytest.raises(ConfigError, match="group advantage .* ppo uses gae"):
        _config(**{"algo.name": "ppo"})
    with pytest.raises(ConfigError, match="seats are for multi_turn"):
        _config(**{"episodes.multi_turn": False})


def test_seats_that_leave_the_learner_nothing_are_refused(duo, tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ConfigError, match="learner would play none"):
        RLLearner(_config(**{"episodes.seats.a": "frozen"}), model, tokenizer)


@pytest.mark.slow
def test_the_rl_job_trains_the_red_seats_of_codenames_against_random_blue(tmp_path):
    overrides = {
        "model.name": "tiny-random-llama",
        "env.id": "codenames-game-v0",
        "episodes.multi_turn": True,
        "episodes.seats.blue/*": "random",
        "algo.group_size": 2,
        "algo.prompts_per_step": 1,
        "sampling.max_new_tokens": 6,
        "sampling.temperature": 1.0,
        "train.steps": 2,
        "train.output_dir": str(tmp_path),
        "train.run_name": "cn",
        "eval.episodes": 2,
    }
    config = load_config(RLConfig, overrides=[f"{k}={v}" for k, v in overrides.items()])
    summary = run_rl(config)
    run = tmp_path / "cn"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["episode_steps"] > 1 and -1.0 <= r["reward_mean"] <= 1.0 for r in records)
    evaluation = json.loads((run / "eval_trained.json").read_text())
    assert len(evaluation["episodes"]) == 2
    for episode in evaluation["episodes"]:
        assert set(episode["rewards"]) <= {"red/spymaster", "red/operative"}
        assert all(agent.startswith("red/") for agent, _ in episode["answers"])
    assert summary is not None


def test_a_token_budget_splits_micro_batches_without_changing_the_update(duo, tiny_lm):
    model, tokenizer = tiny_lm
    samples = RLLearner(_config(), copy.deepcopy(model), tokenizer).rollout.collect(Duo(), step=1)
    passes, weights, stats = [], [], []
    for budget in (0, 1):  # no limit; one context per pass
        learner = RLLearner(_config(**{"algo.micro_batch_tokens": budget}), copy.deepcopy(model),
                            tokenizer)  # fmt: skip
        calls = []
        hook = learner.model.register_forward_hook(lambda *_, seen=calls: seen.append(1))
        stats.append(learner.update(samples))
        hook.remove()
        passes.append(len(calls))
        weights.append(learner.model.state_dict())
    assert passes == [2, 2 * len(samples.completions)]  # prompt + completion pass each
    # The same loss and gradient (Adam would hide a wrong scale in the weights alone).
    assert stats[1]["loss"] == pytest.approx(stats[0]["loss"], rel=1e-4, abs=1e-7)
    assert stats[1]["grad_norm"] == pytest.approx(stats[0]["grad_norm"], rel=1e-4)
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=1e-4, rtol=1e-3)


def _context(agent, n_policy, reward):
    from trainers.episodes import Trajectory

    t = Trajectory(agent, token_ids=[7, 8] + [9] * n_policy + [5], train_mask=[0, 0] + [1] * n_policy
                   + [0], logprobs=[0.0, 0.0] + [-1.0] * n_policy + [0.0],
                   messages=[{"role": "user", "content": "go"},
                             {"role": "assistant", "content": "x" * n_policy}],
                   policy_messages=[1], turns=1)  # fmt: skip
    t.reward = reward
    return t


def test_rows_of_several_agents_and_turns_take_their_own_episodes_advantage():
    from trainers.episodes import Episode
    from trainers.rl.multi_turn import episode_batch

    def episode(seed, red, blue, red_turns, blue_turns):
        contexts = [_context("red", 1 + k, red) for k in range(red_turns)]
        contexts += [_context("blue", 1 + k, blue) for k in range(blue_turns)]
        return Episode(seed, contexts, 3, [{"agent": "red"}], rewards={"red": red, "blue": blue})

    # Two seeds x two episodes; turn counts differ between episodes and agents.
    played = [episode(0, 1.0, -1.0, 2, 1), episode(0, 0.0, 0.5, 1, 3),
              episode(1, 0.2, 0.0, 3, 2), episode(1, 0.2, 1.0, 1, 1)]  # fmt: skip
    batch = episode_batch(played, group_size=2, trained=lambda agent: True)
    # Groups are (seed, agent) in sorted agent order: (0, blue), (0, red), (1, blue), (1, red).
    expected = torch.tensor([[-1.0, 0.5], [1.0, 0.0], [0.0, 1.0], [0.2, 0.2]])
    torch.testing.assert_close(batch["rewards"], expected)
    assert len(batch["completions"]) == 1 + 3 + 2 + 1 + 2 + 1 + 3 + 1
    for completion, (k, j) in zip(batch["completions"], batch["owners"], strict=True):
        agent = ("blue", "red")[k % 2]
        episode_ = played[2 * (k // 2) + j]
        assert completion.token_ids[0] == 9 and completion.train_mask[-1] == 1  # trimmed
        assert any(c.agent == agent and c.train_mask[2:-1] == completion.train_mask
                   for c in episode_.contexts)  # fmt: skip
    only_red = episode_batch(played, group_size=2, trained=lambda agent: agent == "red")
    torch.testing.assert_close(only_red["rewards"], expected[1::2])


def test_frozen_seats_are_the_configured_model_not_the_learners_weights(duo, tiny_lm):
    from assay.models import load_causal_lm

    model, tokenizer = tiny_lm
    trained = copy.deepcopy(model)
    with torch.no_grad():
        next(trained.parameters()).add_(1.0)  # as a resumed checkpoint would differ
    learner = RLLearner(_config(**{"episodes.seats.b": "frozen"}), trained, tokenizer)
    frozen = learner.seats["b"].model
    fresh = load_causal_lm("tiny-random-llama")[0]
    for (name, a), (_, b) in zip(frozen.named_parameters(), fresh.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    learner.close()


def test_unknown_seat_kinds_are_refused_before_any_model_loads(duo, tmp_path):
    config = _config(**{"episodes.seats.b": "genius", "model.name": "nope",
                        "train.output_dir": str(tmp_path)})  # fmt: skip
    with pytest.raises(ConfigError, match="b=genius: seats take the env's scripted agents"):
        run_rl(config)
    assert not any(tmp_path.iterdir())

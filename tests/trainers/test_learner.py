"""The learner's knobs do what their definitions say: dynamic sampling, overlong shaping, KL,
entropy bonus, micro-batches, mini-batches, LR schedules, LoRA and PPO's value head."""

import copy
import math

import pytest
import torch

import envs
from assay.config import load_config
from trainers.engines.base import Completion
from trainers.logprobs import completion_logprobs
from trainers.rl.advantages import token_rewards
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner
from trainers.rl.lora import merged_state_dict
from trainers.rl.samples import Samples
from trainers.rl.schedule import lr_lambda


def _config(**overrides) -> RLConfig:
    base = {"optim.lr": 3e-3, "sampling.temperature": 1.0, "eval.episodes": 0}
    return load_config(RLConfig, overrides=[f"{k}={v}" for k, v in {**base, **overrides}.items()])


def _prompt_ids(tokenizer, messages) -> list[int]:
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )


class SeedEnv(envs.TextEnv):
    """Reward 1 for answers containing 'a'; the prompt names the seed."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": f"seed {seed}"}], self.make_info("player")

    def step(self, action):
        reward = 1.0 if "a" in action.split()[0] else 0.0
        return [], reward, True, False, self.make_info("player")


class ScriptedEngine:
    """Answers 'b sN' n times for seeds divisible by 3 (no reward spread), else alternates
    'a sN' / 'b sN'; token ids have the length given by ``lengths`` (cycled)."""

    def __init__(self, tokenizer, lengths=(3,), finish="stop"):
        self.tokenizer, self.lengths, self.finish = tokenizer, lengths, finish

    def generate(self, prompts, sampling):
        groups = []
        for prompt in prompts:
            seed = int(prompt[0]["content"].split()[1])
            ids = _prompt_ids(self.tokenizer, prompt)
            group = []
            for j in range(sampling.n):
                word = "b" if seed % 3 == 0 or j % 2 else "a"
                n = self.lengths[j % len(self.lengths)]
                tokens = self.tokenizer.encode(" x" * n)[:n]
                group.append(Completion(f"{word} s{seed}", ids, tokens, [], self.finish))
            groups.append(group)
        return groups

    def update_weights(self, named_tensors):
        pass

    def close(self):
        pass


def test_dynamic_sampling_drops_exactly_the_groups_with_equal_rewards(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"algo.name": "dapo", "algo.prompts_per_step": 4, "algo.group_size": 2})
    learner = RLLearner(config, model, tokenizer, engine=ScriptedEngine(tokenizer))
    samples = learner.rollout.collect(SeedEnv(), step=1)
    # Round 0 poses seeds 0-3 (0 and 3 have no spread), round 1 seeds 4-7 (6 has none); the batch
    # is the first four groups with a spread.
    seeds = [int(c.text.split("s")[1]) for c in samples.completions[::2]]
    assert seeds == [1, 2, 4, 5]
    assert samples.rounds == 2 and samples.dropped_groups == 3
    assert (samples.rewards.amax(1) > samples.rewards.amin(1)).all()
    assert len(samples.sampled_rewards) == 8 * 2  # metrics see everything that was sampled


def test_without_dynamic_sampling_every_group_is_kept(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"algo.prompts_per_step": 4, "algo.group_size": 2})
    learner = RLLearner(config, model, tokenizer, engine=ScriptedEngine(tokenizer))
    samples = learner.rollout.collect(SeedEnv(), step=1)
    assert [int(c.text.split("s")[1]) for c in samples.completions[::2]] == [0, 1, 2, 3]
    assert samples.dropped_groups == 0 and samples.rounds == 1


def test_overlong_shaping_penalises_completions_near_and_past_the_limit(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(
        **{"algo.name": "dapo", "algo.dynamic_sampling": False, "sampling.max_new_tokens": 8}
    )  # buffer: 8 // 4 = 2 tokens, so lengths 7 and 8 are penalised -0.5 and -1
    engine = ScriptedEngine(tokenizer, lengths=(6, 7, 8, 7))
    learner = RLLearner(config, model, tokenizer, engine=engine)
    samples = learner.rollout.collect(SeedEnv(), step=1)
    penalty = (samples.shaped - samples.rewards)[0].tolist()
    assert penalty == pytest.approx([0.0, -0.5, -1.0, -0.5, 0.0, -0.5, -1.0, -0.5])
    engine.finish = "length"  # cut at the limit: it would have gone on, so the full penalty
    samples = learner.rollout.collect(SeedEnv(), step=1)
    assert (samples.shaped - samples.rewards).flatten().tolist() == [-1.0] * 16


def _fixed_samples(tokenizer, rewards, n_groups=2, group_size=2):
    completions = []
    for p in range(n_groups):
        prompt = _prompt_ids(tokenizer, [{"role": "user", "content": f"Question {p}: say yes."}])
        for g in range(group_size):
            text = ["yes indeed", "no way at all", "maybe so", "yes"][(p + g) % 4]
            completions.append(Completion(text, prompt, tokenizer.encode(text), [], "stop"))
    return Samples(completions, torch.tensor(rewards, dtype=torch.float32))


def _sequence_logprob(model, completion):
    ids = torch.tensor([completion.prompt_ids + completion.token_ids])
    with torch.no_grad():
        lp, _ = completion_logprobs(model, ids, torch.ones_like(ids), len(completion.token_ids))
    return lp.sum().item()


def test_kl_is_zero_at_the_reference_and_grows_as_the_policy_moves(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"algo.kl_coef": 0.1, "algo.group_size": 2})
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    samples = _fixed_samples(tokenizer, [[1.0, 0.0], [0.0, 1.0]])
    first = learner.update(samples)
    assert first["kl"] == 0.0  # the policy is the reference before its first update
    for _ in range(3):
        later = learner.update(samples)
    assert later["kl"] > 1e-4
    ref = learner.reference.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in model.state_dict().items())  # frozen


def test_kl_in_the_reward_lowers_the_advantage_of_drifting_samples(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"algo.kl_coef": 5.0, "algo.kl_in": "reward", "algo.group_size": 2})
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    samples = _fixed_samples(tokenizer, [[0.0, 0.0], [0.0, 0.0]])
    assert learner.update(samples)["kl"] == 0.0
    learner.update(_fixed_samples(tokenizer, [[1.0, 0.0], [1.0, 0.0]]))  # move the policy
    tensors = learner.tensors(samples, chunks=[[0], [1]])
    old, ref, adv = tensors.old_logprobs, tensors.ref_logprobs, tensors.advantages
    mask = tensors.batch["completion_mask"].float()
    k1 = ((old - ref) * mask).sum(1)  # log pi - log pi_ref summed per completion
    # Equal env rewards: the advantage is GRPO's of -beta * k1 alone.
    expected = torch.stack([(-5.0 * k1[0:2]), (-5.0 * k1[2:4])])
    expected = (expected - expected.mean(1, keepdim=True)) / (expected.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(adv[:, 0], expected.flatten(), atol=1e-4, rtol=1e-4)


def test_entropy_bonus_raises_entropy_when_rewards_carry_no_signal(tiny_lm):
    model, tokenizer = tiny_lm
    samples = _fixed_samples(tokenizer, [[1.0, 1.0], [0.0, 0.0]])  # zero advantages
    flat = RLLearner(_config(**{"algo.group_size": 2}), copy.deepcopy(model), tokenizer)
    before = copy.deepcopy(flat.model.state_dict())
    flat.update(samples)
    assert all(torch.equal(before[k], v) for k, v in flat.model.state_dict().items())
    bonus = RLLearner(
        _config(**{"algo.group_size": 2, "algo.entropy_coef": 1.0}), copy.deepcopy(model), tokenizer
    )
    entropies = [bonus.update(samples)["entropy"] for _ in range(4)]
    assert entropies[-1] > entropies[0] + 1e-3


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "gspo"])
def test_micro_batches_add_up_to_the_whole_batch(tiny_lm, name):
    model, tokenizer = tiny_lm
    samples = _fixed_samples(tokenizer, [[1.0, 0.0], [0.0, 0.5]])
    results = []
    for accum in (1, 2):
        overrides = {"algo.name": name, "algo.group_size": 2, "algo.grad_accum": accum}
        learner = RLLearner(_config(**overrides), copy.deepcopy(model), tokenizer)
        stats = learner.update(samples)
        results.append((stats["loss"], stats["grad_norm"], learner.model.state_dict()))
    (loss1, norm1, w1), (loss2, norm2, w2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-5, abs=1e-7)
    assert norm1 == pytest.approx(norm2, rel=1e-4) and norm1 > 0
    for key in w1:
        # lr is 3e-3: a wrong sum moves weights by about that. AdamW turns float32 noise in a
        # near-zero gradient into a larger step (up to 1.2e-4 on one element in 8,192 measured
        # on an AMD EPYC, where float32 sums run in another order).
        torch.testing.assert_close(w1[key], w2[key], atol=5e-4, rtol=1e-4)


def test_epochs_and_mini_batches_set_the_number_of_optimizer_steps(tiny_lm):
    model, tokenizer = tiny_lm
    samples = _fixed_samples(tokenizer, [[1.0, 0.0], [0.0, 1.0]])
    overrides = {"algo.group_size": 2, "algo.epochs": 2, "algo.mini_batches": 2}
    learner = RLLearner(_config(**overrides), copy.deepcopy(model), tokenizer)
    stats = learner.update(samples)
    param = next(p for p in learner.model.parameters() if p.requires_grad)
    assert learner.optimizer.state[param]["step"].item() == 4
    assert stats["ratio_mean"] != pytest.approx(1.0, abs=1e-7)  # later passes are off-policy


def test_lr_schedules_by_hand():
    cosine = lr_lambda(_config(**{"optim.schedule": "cosine", "optim.warmup_steps": 2,
                                  "optim.min_lr_ratio": 0.1, "train.steps": 12}))  # fmt: skip
    assert [cosine(s) for s in (0, 1)] == [0.5, 1.0]  # warm-up
    assert cosine(2) == pytest.approx(1.0)
    assert cosine(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cosine(12) == pytest.approx(0.1)
    constant = lr_lambda(_config(**{"optim.warmup_steps": 4}))
    assert [constant(s) for s in (0, 3, 50)] == [0.25, 1.0, 1.0]


def test_lora_trains_only_adapters_and_merged_weights_match_the_adapter_model(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"lora.enabled": True, "lora.r": 4, "algo.group_size": 2,
                        "lora.target_modules": "[q_proj, v_proj]"})  # fmt: skip
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    samples = _fixed_samples(tokenizer, [[1.0, 0.0], [0.0, 1.0]])
    for _ in range(3):
        learner.update(samples)
    after = learner.model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero, so it must have moved
    merged = copy.deepcopy(model)
    merged.load_state_dict(merged_state_dict(learner.model))
    ids = torch.tensor([samples.completions[0].prompt_ids + samples.completions[0].token_ids])
    with torch.no_grad():
        expected = learner.model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        base = model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (base - expected).abs().max() > 1e-4  # the adapters did change the model


def test_ppo_value_head_fits_the_returns_and_the_policy_follows_the_advantage(tiny_lm):
    model, tokenizer = tiny_lm
    config = _config(**{"algo.name": "ppo", "algo.group_size": 2, "algo.whiten_advantages": False})
    learner = RLLearner(config, copy.deepcopy(model), tokenizer)
    samples = _fixed_samples(tokenizer, [[1.0, 0.0], [0.0, 1.0]])
    good, bad = samples.completions[0], samples.completions[1]
    before = (_sequence_logprob(learner.model, good), _sequence_logprob(learner.model, bad))
    losses = [learner.update(samples)["value_loss"] for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]
    after = (_sequence_logprob(learner.model, good), _sequence_logprob(learner.model, bad))
    assert after[0] > before[0] and after[1] < before[1]
    state = learner.trainer_state()
    assert "value_head" in state  # checkpoints keep the critic


def test_step_rewards_land_on_the_token_that_ends_each_step(tiny_lm):
    _, tokenizer = tiny_lm
    text = "Step one.\nStep two.\nDone"
    ids = tokenizer.encode(text)
    completion = Completion(text, [1, 2], ids, [], "stop")
    first_end = len("Step one.")
    info = {"step_rewards": [[first_end, 0.25], [len("Step one.\nStep two."), -0.5]]}
    samples = Samples([completion], torch.tensor([[1.0]]), [info])
    mask = torch.ones(1, len(ids))
    rewards = token_rewards(samples, mask, tokenizer)[0]
    t = rewards.nonzero().flatten().tolist()
    assert len(t) == 3 and t[-1] == len(ids) - 1 and rewards[-1] == 1.0
    assert rewards[t[0]] == 0.25 and rewards[t[1]] == -0.5
    # The first step's reward sits on the token that completes "Step one.", not before it.
    assert tokenizer.decode(ids[: t[0] + 1]).startswith("Step one.")
    assert not tokenizer.decode(ids[: t[0]]).startswith("Step one.")


def test_lora_adapters_start_from_the_run_seed(tiny_lm):
    """Two runs with the same config start from the same adapters (peft draws them from torch's
    global RNG, which other code has moved by then); another seed gives other adapters."""
    model, tokenizer = tiny_lm
    overrides = {"lora.enabled": True, "lora.r": 4, "lora.target_modules": "[q_proj, v_proj]"}

    def adapters(seed: int) -> dict[str, torch.Tensor]:
        torch.rand(seed + 3)  # whatever ran before moved the global RNG differently
        learner = RLLearner(_config(**overrides, **{"train.seed": seed}), copy.deepcopy(model),
                            tokenizer)  # fmt: skip
        return {k: v.clone() for k, v in learner.model.state_dict().items() if "lora_A" in k}

    first, again, other = adapters(0), adapters(0), adapters(1)
    assert first and all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)

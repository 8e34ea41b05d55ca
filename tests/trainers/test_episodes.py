"""Multi-turn, multi-agent episodes: token-exact contexts, train masks, per-agent rewards."""

import envs
from envs import TextEnv
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine
from trainers.episodes import run_episodes


class TwoTurns(TextEnv):
    """The agent answers twice; the env comments on the first answer in between."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.messages = [{"role": "user", "content": f"Say something ({seed})."}]
        self.turn = 0
        return list(self.messages), self.make_info("talker")

    def step(self, action):
        self.turn += 1
        self.messages.append({"role": "assistant", "content": action})
        if self.turn == 2:
            return list(self.messages), 1.0, True, False, self.make_info("talker")
        self.messages.append({"role": "user", "content": f"{len(action)} characters. Again."})
        return list(self.messages), 0.5, False, False, self.make_info("talker")


class Relay(TextEnv):
    """Agents a and b take turns, each told what the other said; b pays a at the end."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.views = {"a": [{"role": "user", "content": "Start."}], "b": []}
        self.turn = 0
        return list(self.views["a"]), self.make_info("a")

    def step(self, action):
        me, other = ("a", "b") if self.turn % 2 == 0 else ("b", "a")
        self.turn += 1
        self.views[me].append({"role": "assistant", "content": action})
        self.views[other].append({"role": "user", "content": f"{me} said: {action}"})
        if self.turn == 4:
            info = self.make_info(other, rewards={"a": 1.0, "b": -1.0})
            return list(self.views[other]), 0.0, True, False, info
        return list(self.views[other]), 0.0, False, False, self.make_info(other)


class Recording:
    """An engine wrapper that remembers every completion it returned, per prompt."""

    def __init__(self, engine):
        self.engine, self.log = engine, []

    def generate(self, prompts, sampling):
        groups = self.engine.generate(prompts, sampling)
        self.log += [g[0] for g in groups]
        return groups


SAMPLING = Sampling(temperature=1.0, max_new_tokens=5, seed=0)


def _rendered_matches(tokenizer, trajectory):
    """The context decodes to what the chat template renders for the conversation, up to the
    template's closing of the last answer."""
    decoded = tokenizer.decode(trajectory.token_ids)
    rendered = tokenizer.apply_chat_template(trajectory.messages, tokenize=False)
    return rendered.startswith(decoded) and rendered[len(decoded) :] in ("", "\n", "<|im_end|>\n")


def test_two_turn_trajectory_is_token_exact(tiny_lm):
    model, tokenizer = tiny_lm
    engine = Recording(HFEngine(model, tokenizer))
    (episode,) = run_episodes(engine, TwoTurns, [3], SAMPLING, tokenizer)
    (t,) = episode.trajectories["talker"]
    assert (episode.steps, t.turns, t.reward) == (2, 2, 1.5)
    assert _rendered_matches(tokenizer, t)
    generated = [tok for tok, m in zip(t.token_ids, t.train_mask, strict=True) if m]
    assert generated == engine.log[0].token_ids + engine.log[1].token_ids
    # The second turn was generated from exactly the context built so far.
    second_start = len(t.token_ids) - len(engine.log[1].token_ids)
    assert engine.log[1].prompt_ids == t.token_ids[:second_start]
    assert len(t.logprobs) == len(t.token_ids)
    assert t.logprobs[second_start:] == engine.log[1].logprobs


def test_two_policies_two_agents_and_per_agent_rewards(tiny_lm):
    model, tokenizer = tiny_lm
    learner, opponent = Recording(HFEngine(model, tokenizer)), Recording(HFEngine(model, tokenizer))
    episodes = run_episodes({"a": learner, "*": opponent}, Relay, [0, 1], SAMPLING, tokenizer)
    assert len(learner.log) == 4 and len(opponent.log) == 4  # 2 episodes x 2 turns each
    for episode in episodes:
        assert episode.rewards == {"a": 1.0, "b": -1.0}
        for agent in ("a", "b"):
            (t,) = episode.trajectories[agent]
            assert t.turns == 2 and _rendered_matches(tokenizer, t)
            assert (
                sum(t.train_mask)
                == sum(len(c.token_ids) for c in (learner if agent == "a" else opponent).log) // 2
            )


def test_a_fresh_observation_starts_a_new_token_exact_context(tiny_lm):
    class Fresh(TwoTurns):
        def step(self, action):
            observation, *rest = super().step(action)
            return observation[-1:], *rest  # the new turn shows only the latest message

    model, tokenizer = tiny_lm
    engine = Recording(HFEngine(model, tokenizer))
    (episode,) = run_episodes(engine, Fresh, [0], SAMPLING, tokenizer)
    first, second = episode.trajectories["talker"]
    assert [c.turns for c in episode.contexts] == [1, 1] and episode.rewards == {"talker": 1.5}
    assert first.reward == second.reward == 1.5  # each context carries the episode's reward
    assert second.messages[0]["content"].endswith("characters. Again.")
    # The second turn was generated from the fresh conversation alone, rendered by the template.
    fresh = tokenizer.apply_chat_template(
        second.messages[:1], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert engine.log[1].prompt_ids == fresh == second.token_ids[: len(fresh)]
    for context, completion in zip(episode.contexts, engine.log, strict=True):
        assert _rendered_matches(tokenizer, context)
        generated = [t for t, m in zip(context.token_ids, context.train_mask, strict=True) if m]
        assert generated == completion.token_ids


def test_scripted_agents_by_pattern_act_without_contexts(tiny_lm):
    model, tokenizer = tiny_lm
    learner = Recording(HFEngine(model, tokenizer))
    seen = []

    def echo(observation, info):
        seen.append(info["agent"])
        return "pass"

    (episode,) = run_episodes({"[b]": echo, "*": learner}, Relay, [0], SAMPLING, tokenizer)
    assert seen == ["b", "b"] and len(learner.log) == 2
    assert [c.agent for c in episode.contexts] == ["a"]
    assert "b said: pass" in episode.contexts[0].messages[-2]["content"]
    assert episode.rewards == {"a": 1.0, "b": -1.0} and episode.contexts[0].reward == 1.0


def test_a_codenames_game_learner_seats_against_scripted_ones(tiny_lm):
    """The full game shows each seat a fresh board every turn: the learner's red seats get one
    token-exact context per turn, blue's scripted agents none, and every context carries its
    seat's game result."""
    from envs.codenames.agents import scripted_agent

    model, tokenizer = tiny_lm
    blue = {
        f"blue/{role}": scripted_agent("random", role, seed=1)
        for role in ("spymaster", "operative")
    }
    policies = {**{seat: (lambda a: lambda obs, info: a.act(obs, info["view"]))(agent)
                   for seat, agent in blue.items()}, "red/*": HFEngine(model, tokenizer)}  # fmt: skip
    episodes = run_episodes(
        policies, lambda: envs.make("codenames-game-v0"), [0, 1], SAMPLING, tokenizer, max_turns=80
    )
    for episode in episodes:
        assert episode.contexts and {c.agent for c in episode.contexts} <= {
            "red/spymaster",
            "red/operative",
        }
        assert all(c.turns == 1 and _rendered_matches(tokenizer, c) for c in episode.contexts)
        assert all(c.reward == episode.rewards[c.agent] for c in episode.contexts)
        winner = episode.infos[-1].get("winner")
        if winner in ("red", "blue"):
            assert episode.rewards["red/spymaster"] == (1.0 if winner == "red" else -1.0)


def test_closing_ids_do_not_assume_the_end_of_sequence_token_ends_a_turn(tiny_lm):
    import copy

    from trainers.episodes import closing_ids

    _, tokenizer = tiny_lm
    other = copy.deepcopy(tokenizer)
    other.eos_token = "<|endoftext|>"  # as in chat models whose turns end with another token
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    im_end, newline = other.convert_tokens_to_ids("<|im_end|>"), other.encode("\n")[0]
    assert closing_ids(other, messages, generated=[42]) == [im_end, newline]
    assert closing_ids(other, messages, generated=[42, im_end]) == [newline]


def test_episodes_cut_by_max_turns_are_marked_truncated(tiny_lm):
    model, tokenizer = tiny_lm
    (episode,) = run_episodes(HFEngine(model, tokenizer), TwoTurns, [0], SAMPLING, tokenizer,
                              max_turns=1)  # fmt: skip
    assert episode.truncated and episode.steps == 1

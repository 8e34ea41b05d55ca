"""``envs.trl.environment_factory``: an assay env as TRL's ``environment_factory`` class. TRL
finds its tools the way GRPOTrainer does, and a game played through its ``act`` tool earns the
reward the same game earns in process."""

import fnmatch
import inspect

import pytest
from transformers.utils.chat_template_utils import get_json_schema

import envs
from envs.trl import environment_factory


def test_trl_sees_one_tool_with_a_schema_and_the_reward_hook():
    instance = environment_factory("codenames-guess-v0")()
    # GRPOTrainer lists public functions on the class; all but reset and get_reward are tools.
    members = [n for n, _ in inspect.getmembers(type(instance), inspect.isfunction)]
    assert {"reset", "get_reward"} <= set(members)
    tools = [n for n in members if n not in ("reset", "get_reward") and not n.startswith("_")]
    assert tools == ["act"]
    schema = get_json_schema(instance.act)["function"]
    assert schema["parameters"]["required"] == ["message"]


def test_a_single_turn_row_scores_like_the_env():
    Env = environment_factory("codenames-guess-v0", difficulty="far")
    env, local = Env(), envs.make("codenames-guess-v0", difficulty="far")
    _, info = local.reset(seed=12)
    answer = "Guesses: " + ", ".join(info["targets"][: info["max_guesses"]])
    assert env.reset(seed=12, prompt=[{"role": "user", "content": "..."}]) is None
    assert "episode is over" in env.act(answer)
    assert env.get_reward() == local.step(answer)[1] > 0
    with pytest.raises(ValueError, match="episode is over"):
        env.act(answer)
    assert env.reset(seed=12).startswith(local.reset(seed=12)[0][-1]["content"][:40])


def test_a_game_with_scripted_seats_earns_the_reward_of_the_same_game_in_process():
    seats = {"blue/*": "embedding"}
    env = environment_factory("codenames-game-v0", seats=seats)()
    local = envs.make("codenames-game-v0")
    observation, info = local.reset(seed=21)
    shown = env.reset(seed=21)
    players, want, turns = {}, 0.0, 0
    while True:
        agent = info["agent"]
        kind = "embedding" if fnmatch.fnmatch(agent, "blue/*") else "random"
        players.setdefault(agent, local.scripted_policy(kind, agent, seed=21))
        action = players[agent](observation, info)
        if kind == "random":  # the model's turn: the same text goes through the tool
            assert shown == observation[-1]["content"]
            shown = env.act(action)
            turns += 1
        observation, reward, terminated, truncated, info = local.step(action)
        want += sum(v for who, v in info["rewards"].items() if who.startswith("red/"))
        if terminated or truncated:
            break
    assert turns >= 2 and env.done
    assert want != 0 and env.get_reward() == pytest.approx(want)

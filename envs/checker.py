"""Contract checker for TextEnvs: small named ``check_*`` functions, run by ``assay envs check``.

Each check raises ``AssertionError`` with a message on failure. :func:`check_env` runs them all
(gymnasium's own ``check_env`` first, where it applies) and returns one result per check.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from envs.core import ChatMessages, TextEnv

CONTRACT_KEYS = ("agent", "valid", "reason")
BAD_ACTIONS = (
    "",
    "   ",
    "\x00\x01 garbage",
    "ünïcødé 🙂",
    "x" * 4000,
    "Answer: " + "9" * 5000,  # int() refuses > 4300 digits: parse numbers with a bound
    "Guesses:",
    "[[[{{{",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str = ""


def _check_info(info: dict, where: str) -> None:
    missing = [k for k in CONTRACT_KEYS if k not in info]
    assert not missing, f"info from {where} lacks {missing}"
    assert isinstance(info["agent"], str) and info["agent"], f"info['agent'] from {where} is empty"
    assert isinstance(info["valid"], bool), f"info['valid'] from {where} is not a bool"
    assert isinstance(info["reason"], str), f"info['reason'] from {where} is not a str"


def check_gymnasium(env: TextEnv) -> None:
    """gymnasium's own checker (spaces, reset/step signatures, seeding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a gymnasium warning is a contract failure here
        gymnasium_check_env(env, skip_render_check=True)


def check_observation_format(env: TextEnv) -> None:
    """``reset`` returns a chat-message list and an info dict with the contract keys."""
    observation, info = env.reset(seed=0)
    assert ChatMessages().contains(observation), (
        f"observation is not chat messages: {observation!r:.200}"
    )
    assert observation[-1]["role"] == "user", (
        "the last message of an observation must be the user's"
    )
    _check_info(info, "reset")
    assert info["valid"] is True, "info['valid'] after reset must be True"


def check_seed_determinism(env: TextEnv) -> None:
    """Same seed, same episode; different seeds, different episodes."""
    first = env.reset(seed=123)
    again = env.reset(seed=123)
    assert first == again, "reset(seed=123) twice gave different observations or info"
    if getattr(env.unwrapped, "fixed_start", False):
        return  # every episode starts alike (it says so); the seed drives what follows
    others = {repr(env.reset(seed=s)[0]) for s in range(1, 6)}
    assert len(others) > 1, "five different seeds all gave the same observation"


def check_step_types(env: TextEnv) -> None:
    """``step`` returns (observation, float reward, bool, bool, info with the contract keys)."""
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float | int) and math.isfinite(reward), (
        f"reward {reward!r} is not a finite float"
    )
    assert isinstance(terminated, bool) and isinstance(truncated, bool), (
        "terminated/truncated must be bools"
    )
    assert ChatMessages().contains(observation), "observation after step is not chat messages"
    _check_info(info, "step")


def check_invalid_actions(env: TextEnv) -> None:
    """Malformed actions give ``valid=False``, a reason and a finite reward, never an exception."""
    for action in BAD_ACTIONS:
        env.reset(seed=0)
        try:
            _, reward, _, _, info = env.step(action)
        except Exception as err:  # the point of the check is to catch any crash
            raise AssertionError(
                f"step({action[:20]!r}) raised {type(err).__name__}: {err}"
            ) from err
        _check_info(info, f"step({action[:20]!r})")
        assert math.isfinite(reward), f"step({action[:20]!r}) gave reward {reward!r}"
        if not info["valid"]:
            assert info["reason"], f"step({action[:20]!r}) is invalid without a reason"
    env.reset(seed=0)
    _, _, _, _, info = env.step("")
    assert info["valid"] is False, "an empty action must be invalid"


def check_teacher(env: TextEnv) -> None:
    """Where the env teaches (``demonstration``), its answers are valid; where it has a chance
    baseline (``chance_reward``), it is a finite number. Envs without either pass."""
    unwrapped = env.unwrapped
    if not hasattr(unwrapped, "demonstration"):
        return  # a plain gymnasium env: no teacher hooks
    for seed in range(3):
        env.reset(seed=seed)
        chance = unwrapped.chance_reward()
        assert chance is None or (isinstance(chance, float | int) and math.isfinite(chance)), (
            f"chance_reward() on seed {seed} is {chance!r}, not a finite number or None"
        )
        answer = unwrapped.demonstration()
        if answer is None:
            continue
        assert isinstance(answer, str), f"demonstration() returned {type(answer).__name__}"
        _, reward, _, _, info = env.step(answer)
        assert info["valid"], (
            f"the env's own demonstration on seed {seed} is invalid: {info['reason']} "
            f"({answer[:80]!r})"
        )


CHECKS: tuple[Callable[[TextEnv], None], ...] = (
    check_gymnasium,
    check_observation_format,
    check_seed_determinism,
    check_step_types,
    check_invalid_actions,
    check_teacher,
)


def check_env(env: TextEnv) -> list[CheckResult]:
    """Run every check on ``env`` and return one :class:`CheckResult` per check."""
    results = []
    for check in CHECKS:
        try:
            check(env)
            results.append(CheckResult(check.__name__, True))
        except AssertionError as err:
            results.append(CheckResult(check.__name__, False, str(err)))
        except Exception as err:  # a crash inside a check is a failed check, not a crashed checker
            results.append(
                CheckResult(check.__name__, False, f"raised {type(err).__name__}: {err}")
            )
    return results

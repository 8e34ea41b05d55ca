"""Text environments: the TextEnv contract, the registry, and the built-in games.

>>> import envs
>>> env = envs.make("codenames-guess-v0")
>>> observation, info = env.reset(seed=0)
>>> observation[-1]["role"], info["agent"]
('user', 'guesser')
"""

from envs.checker import CheckResult, check_env
from envs.core import ChatMessages, FreeText, Message, TextEnv
from envs.registry import ENTRY_POINT_GROUP, EnvSpec, list_envs, make, register, spec

register("codenames-guess-v0", "envs.codenames.guess:CodenamesGuessEnv")

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChatMessages",
    "CheckResult",
    "EnvSpec",
    "FreeText",
    "Message",
    "TextEnv",
    "check_env",
    "list_envs",
    "make",
    "register",
    "spec",
]

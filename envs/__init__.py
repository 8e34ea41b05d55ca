"""Text environments: the TextEnv contract, the registry, and the built-in games.

>>> import envs
>>> env = envs.make("codenames-guess-v0")
>>> observation, info = env.reset(seed=0)
>>> observation[-1]["role"], info["agent"]
('user', 'guesser')
"""

from envs.checker import CheckResult, check_env
from envs.core import ChatMessages, FreeText, Message, TextEnv, score_answers
from envs.registry import ENTRY_POINT_GROUP, EnvSpec, list_envs, load_plugins, make, register, spec

register("codenames-guess-v0", "envs.codenames.guess:CodenamesGuessEnv")
register("codenames-clue-v0", "envs.codenames.clue:CodenamesClueEnv")
register("codenames-game-v0", "envs.codenames.game:CodenamesGameEnv")
for _task in ("sst2", "agnews", "rte", "trec", "cb"):
    register(f"icl-{_task}-v0", "envs.icl.env:ICLEnv", task=_task)
register("math-gsm8k-v0", "envs.math.env:MathEnv", dataset="gsm8k")
register("math-math-v0", "envs.math.env:MathEnv", dataset="math")
register("math-math500-v0", "envs.math.env:MathEnv", dataset="math500", split="test")
# Plugins register now (their modules are imported only when made), so that
# gymnasium.make("assay/<plugin-id>") works after `import envs`.
load_plugins()

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
    "score_answers",
    "spec",
]

"""ICL tasks as single-turn TextEnvs with an exact-match reward (``icl-sst2-v0``, ...).

``reset(seed)`` draws ``n_demos`` label-balanced demonstrations from the task's demonstration
pool and one test instance (instance ``options={"index": i}`` to pick it), applies
``corruption`` (seeded by the episode seed) and renders the prompt in ``mode`` ``chat`` (the
description as system message, demonstrations as turns) or ``plain`` (one user message holding
the plain-text prompt). The reward is 1 when the answer's first line, stripped of spaces and
punctuation, equals the label word (case-insensitive), else 0; an empty answer is invalid.
"""

from __future__ import annotations

import re
from typing import Any

from gymnasium.error import ResetNeeded

from assay.errors import ConfigError
from envs.core import TextEnv
from envs.icl.corruptions import corrupt, expand, list_corruptions
from envs.icl.prompt import Demo, Layout, Parts, render_chat, render_plain
from envs.icl.tasks import ICLTask, load_task


def balanced_demos(task: ICLTask, n: int, rng) -> list:
    """n demonstrations, as even across labels as n allows, in random order (any n for a
    generation task)."""
    if not task.label_space:
        picks = rng.choice(len(task.demos), min(n, len(task.demos)), replace=False)
        return [task.demos[int(i)] for i in picks]
    by_label = {label: [d for d in task.demos if d.label == label] for label in task.label_space}
    order = [task.label_space[i % len(task.label_space)] for i in range(n)]
    picked, used = [], set()
    for label in order:
        pool = [d for d in by_label[label] if id(d) not in used] or [
            d for d in task.demos if id(d) not in used
        ]
        choice = pool[int(rng.integers(len(pool)))]
        used.add(id(choice))
        picked.append(choice)
    rng.shuffle(picked)
    return picked


def build_parts(task: ICLTask, demos, test) -> Parts:
    return Parts(
        description=task.description,
        demos=tuple(Demo(d.input, d.label, task.inline) for d in demos),
        test_input=test.input,
        test_inline=task.inline,
    )


def is_match(answer: str, label: str) -> bool:
    first = answer.strip().split("\n", 1)[0]
    return re.sub(r"[^\w/]+", "", first).lower() == re.sub(r"[^\w/]+", "", label).lower()


class ICLEnv(TextEnv):
    """Options: ``task`` (sst2, agnews, rte, trec, cb), ``n_demos`` (4), ``corruption``
    (``all``: none; any name of ``envs.icl.list_corruptions()``, ``:k`` for the parametric
    ones), ``mode`` (``chat`` or ``plain``), ``tokenizer`` (for token-length matched random
    words; whitespace words without it)."""

    metric_keys = ()

    def __init__(self, task: str = "sst2", n_demos: int = 4, corruption: str = "all",
                 mode: str = "chat", tokenizer=None):  # fmt: skip
        try:
            self.task = load_task(task)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not isinstance(n_demos, int) or not 0 <= n_demos <= 16:
            raise ConfigError(f"n_demos must be an int from 0 to 16, got {n_demos!r}.")
        valid = expand(list_corruptions(), n_demos)
        if corruption not in valid:
            raise ConfigError(f"corruption {corruption!r} is not one of {', '.join(valid)}.")
        if mode not in ("chat", "plain"):
            raise ConfigError(f"mode must be chat or plain, got {mode!r}.")
        self.n_demos, self.corruption, self.mode, self.tokenizer = (
            n_demos,
            corruption,
            mode,
            tokenizer,
        )
        self.layout = Layout(input_prefix=self.task.input_prefix)
        self._label: str | None = None
        self._messages: list = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        index = (options or {}).get("index")
        if index is None:
            index = int(rng.integers(len(self.task.tests)))
        test = self.task.tests[index]
        demos = balanced_demos(self.task, self.n_demos, rng)
        parts = build_parts(self.task, demos, test)
        parts = corrupt(parts, self.corruption, int(rng.integers(2**31)), self.task.label_space,
                        self.tokenizer)  # fmt: skip
        self._label = test.label
        if self.mode == "chat":
            observation = render_chat(parts, self.layout)
        else:
            observation = [{"role": "user", "content": render_plain(parts, self.layout)}]
        info = self.make_info("classifier", label=test.label, index=index,
                              corruption=self.corruption, task=self.task.name)  # fmt: skip
        self._messages = observation
        return list(observation), info

    def step(self, action: str):
        if self._label is None:
            raise ResetNeeded("Call reset() before step(); an ICL episode is one step.")
        label, self._label = self._label, None
        reward = 1.0 if is_match(action, label) else 0.0
        valid = bool(action.strip())
        info = self.make_info("classifier", valid, "" if valid else "empty answer", label=label)
        transcript = self._messages + [{"role": "assistant", "content": action}]
        return transcript, reward, True, False, info

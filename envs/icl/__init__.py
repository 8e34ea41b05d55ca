"""In-context-learning probes: prompts by component, structural and semantic corruptions, and
the shipped classification tasks as single-turn envs (``icl-sst2-v0``, ``icl-agnews-v0``, ...)."""

from envs.icl.corruptions import corrupt, expand, list_corruptions
from envs.icl.prompt import Demo, Layout, Parts, render_chat, render_plain
from envs.icl.tasks import TASKS, ICLTask, load_task

__all__ = [
    "TASKS",
    "Demo",
    "ICLTask",
    "Layout",
    "Parts",
    "corrupt",
    "expand",
    "list_corruptions",
    "load_task",
    "render_chat",
    "render_plain",
]

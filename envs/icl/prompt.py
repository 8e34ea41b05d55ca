"""A few-shot prompt by component (Deconstructing In-Context Learning, 2024): a task description,
demonstrations (input, label), and an inline instruction repeated with each demonstration and
with the test input. Corruptions (:mod:`envs.icl.corruptions`) edit these parts; rendering turns
them into text or chat messages.

Rendered in plain mode with every component (``sep`` between the lines of one example,
``demo_sep`` between examples)::

    Classify the sentiment of the review as positive or negative.     <- description

    Review: a gripping film                                           <- demonstration input
    Is this review positive or negative?                              <- inline instruction
    Answer: positive                                                  <- label

    Review: <test input>
    Is this review positive or negative?
    Answer:
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Demo:
    input: str | None  # None: removed
    label: str | None  # None: removed
    inline: str | None  # the inline instruction shown with this demonstration, or None


@dataclass(frozen=True)
class Parts:
    """The components of one prompt; every corruption maps Parts to Parts."""

    description: str | None
    demos: tuple[Demo, ...]
    test_input: str
    test_inline: str | None
    description_after_demos: bool = False

    def with_demos(self, demos) -> Parts:
        return replace(self, demos=tuple(demos))


@dataclass(frozen=True)
class Layout:
    input_prefix: str = "Input: "
    label_prefix: str = "Answer: "
    sep: str = "\n"
    demo_sep: str = "\n\n"
    extra: dict = field(default_factory=dict)


def _example(input_: str | None, inline: str | None, label: str | None, layout: Layout, test=False):
    lines = []
    if input_ is not None:
        lines.append(layout.input_prefix + input_)
    if inline is not None:
        lines.append(inline)
    if test:
        lines.append(layout.label_prefix.rstrip())
    elif label is not None:
        lines.append(layout.label_prefix + label)
    return layout.sep.join(lines)


def render_plain(parts: Parts, layout: Layout = Layout()) -> str:
    """The prompt as one string, ending with the label prefix the model completes."""
    blocks = []
    if parts.description is not None and not parts.description_after_demos:
        blocks.append(parts.description)
    for demo in parts.demos:
        text = _example(demo.input, demo.inline, demo.label, layout)
        if text:
            blocks.append(text)
    if parts.description is not None and parts.description_after_demos:
        blocks.append(parts.description)
    blocks.append(_example(parts.test_input, parts.test_inline, None, layout, test=True))
    return layout.demo_sep.join(blocks)


def render_chat(parts: Parts, layout: Layout = Layout()) -> list[dict[str, str]]:
    """The prompt as chat messages: the description as the system message, each demonstration
    as a user turn (input + inline) and an assistant turn (label), then the test as a user turn."""
    messages = []
    if parts.description is not None and not parts.description_after_demos:
        messages.append({"role": "system", "content": parts.description})
    for demo in parts.demos:
        user = _example(demo.input, demo.inline, None, layout).strip()
        if user:
            messages.append({"role": "user", "content": user})
        if demo.label is not None:
            messages.append({"role": "assistant", "content": demo.label})
    test = _example(parts.test_input, parts.test_inline, None, layout)
    if parts.description is not None and parts.description_after_demos:
        test = parts.description + layout.demo_sep + test
    messages.append({"role": "user", "content": test})
    return messages

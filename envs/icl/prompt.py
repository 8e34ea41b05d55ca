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


def _example_segments(demo_input, inline, label, layout: Layout, test=False, prefix="demo"):
    """(component, text) pieces of one example, joined by ``layout.sep``."""
    lines: list[list[tuple[str, str]]] = []
    if demo_input is not None:
        lines.append([("format", layout.input_prefix), (f"{prefix}_input", demo_input)])
    if inline is not None:
        lines.append([(f"{prefix}_inline", inline)])
    if test:
        lines.append([("format", layout.label_prefix.rstrip())])
    elif label is not None:
        lines.append([("format", layout.label_prefix), ("demo_label", label)])
    return _joined(lines, layout.sep)


def segments(parts: Parts, layout: Layout = Layout()) -> list[tuple[str, str]]:
    """The plain prompt as (component, text) pieces: ``description``, ``demo_input``,
    ``demo_inline``, ``demo_label``, ``test_input``, ``test_inline`` and ``format`` (prefixes
    and separators). Joining the texts gives :func:`render_plain`."""
    blocks: list[list[tuple[str, str]]] = []
    if parts.description is not None and not parts.description_after_demos:
        blocks.append([("description", parts.description)])
    for demo in parts.demos:
        pieces = _example_segments(demo.input, demo.inline, demo.label, layout)
        if pieces:
            blocks.append(pieces)
    if parts.description is not None and parts.description_after_demos:
        blocks.append([("description", parts.description)])
    blocks.append(
        _example_segments(parts.test_input, parts.test_inline, None, layout, True, "test")
    )
    return _joined(blocks, layout.demo_sep)


def _joined(groups: list[list[tuple[str, str]]], sep: str) -> list[tuple[str, str]]:
    """The groups' pieces in order, with a ``format`` piece ``sep`` between groups."""
    out: list[tuple[str, str]] = []
    for i, group in enumerate(groups):
        if i:
            out.append(("format", sep))
        out += group
    return out


def render_plain(parts: Parts, layout: Layout = Layout()) -> str:
    """The prompt as one string, ending with the label prefix the model completes."""
    return "".join(text for _, text in segments(parts, layout))


def _example(input_: str | None, inline: str | None, label: str | None, layout: Layout, test=False):
    return "".join(text for _, text in _example_segments(input_, inline, label, layout, test))


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

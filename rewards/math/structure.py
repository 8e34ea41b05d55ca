"""Read the shape of an answer before comparing values: matrices, unions, sets, intervals and
tuples, lists, equations, inequalities. Pure string work on normalised text.

:func:`structure` returns ``(kind, ...)``:

- ``("matrix" | "determinant", rows)`` for ``\\begin{pmatrix}...`` (``vmatrix`` is a determinant);
- ``("union", parts)`` for ``A \\cup B``;
- ``("set", items)`` for ``\\{...\\}``;
- ``("bracket", open, close, items)`` for ``(a, b]`` (a tuple or an interval);
- ``("list", items)`` for ``1, 2`` / ``1 and 2`` / ``1 or 2`` / ``a \\pm b``;
- ``("eq", lhs, rhs, lhs_is_one_variable)`` for ``x = 3``;
- ``("scalar", text)`` otherwise. Inequalities in one variable become intervals first.
"""

from __future__ import annotations

import re

from rewards.math.expr import ParseError, TooLarge

MAX_ELEMENTS = 64


def split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside any brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i].strip())
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


_MATRIX = re.compile(
    r"\\begin\{(?P<env>[pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(?P<body>.*)\\end\{(?P=env)\}",
    re.DOTALL,
)
SIMPLE_LHS = re.compile(r"[a-zA-Z](?:_\{?\w+\}?)?|[a-zA-Z]\([a-zA-Z]\)")


def structure(text: str) -> tuple:
    """``(kind, ...)``: matrix, union, set, bracket, list, eq (lhs, rhs, lhs is one variable)
    or scalar."""
    if m := _MATRIX.fullmatch(text):
        rows = [r for r in re.split(r"\\\\", m["body"]) if r.strip()]
        kind = "determinant" if m["env"] in ("vmatrix", "Vmatrix") else "matrix"
        return (kind, [[c.strip() for c in row.split("&")] for row in rows])
    if interval := _inequality_interval(text):
        text = interval
    if text.count("\\pm") == 1 and "," not in text:
        return ("list", [text.replace("\\pm", "+"), text.replace("\\pm", "-")])
    if len(parts := split_top(text, "\\cup")) > 1:
        return ("union", [structure(p) for p in parts])
    if text.startswith("\\{") and text.endswith("\\}"):
        return ("set", _elements(text[2:-2]))
    if text[:1] in "([" and text[-1:] in ")]" and _closes_at_end(text):
        items = _elements(text[1:-1])
        if len(items) >= 2:
            return ("bracket", text[0], text[-1], items)
    items = [
        p
        for part in split_top(text, ",")
        for piece in split_top(part, " and ")
        for p in split_top(piece, " or ")
    ]
    if len(items) > 1:
        return ("list", _elements_of(items))
    sides = split_top(text, "=")
    if len(sides) == 2 and all(sides):
        lhs, rhs = sides
        return ("eq", lhs, rhs, SIMPLE_LHS.fullmatch(lhs) is not None)
    return ("scalar", text)


_RELATION = r"(<|>|\\le(?:q)?|\\ge(?:q)?|\\lt|\\gt)"
_ONE_SIDED = re.compile(rf"^(?P<var>[a-zA-Z])\s*{_RELATION}\s*(?P<bound>[^<>=]+)$")
_TWO_SIDED = re.compile(
    rf"^(?P<low>[^<>=]+?)\s*{_RELATION}\s*(?P<var>[a-zA-Z])\s*{_RELATION}\s*(?P<high>[^<>=]+)$"
)


def _inequality_interval(text: str) -> str | None:
    """``x > 3`` -> ``(3, \\infty)``, ``1 \\le x < 3`` -> ``[1, 3)``; None for anything else."""
    if m := _ONE_SIDED.match(text):
        op, bound = m[2], m["bound"].strip()
        if op in ("<", "\\lt"):
            return f"(-\\infty, {bound})"
        if op in (">", "\\gt"):
            return f"({bound}, \\infty)"
        return f"(-\\infty, {bound}]" if op.startswith("\\le") else f"[{bound}, \\infty)"
    if (
        (m := _TWO_SIDED.match(text))
        and m[2] in ("<", "\\le", "\\leq", "\\lt")
        and m[4] in ("<", "\\le", "\\leq", "\\lt")
    ):
        left = "(" if m[2] in ("<", "\\lt") else "["
        right = ")" if m[4] in ("<", "\\lt") else "]"
        return f"{left}{m['low'].strip()}, {m['high'].strip()}{right}"
    return None


def _elements(inner: str) -> list[str]:
    return _elements_of(split_top(inner, ",") if inner.strip() else [])


def _elements_of(items: list[str]) -> list[str]:
    """Elements of a list, set or tuple. Labels (``x = 2, y = 3``) are dropped unless every
    element has one, in which case they are kept (``x=2, y=3`` is not ``y=2, x=3``)."""
    if len(items) > MAX_ELEMENTS:
        raise TooLarge(f"more than {MAX_ELEMENTS} elements")
    if any(re.fullmatch(r"0\d\d", item) for item in items):
        raise ParseError("ambiguous thousands separator inside a list")
    split = [split_top(item, "=") for item in items]
    labelled = [len(p) == 2 and SIMPLE_LHS.fullmatch(p[0]) is not None for p in split]
    if len(items) > 1 and all(labelled):
        return [f"{p[0].strip()}={p[1].strip()}" for p in split]
    return [p[1] if ok else item for p, ok, item in zip(split, labelled, items, strict=True)]


def _closes_at_end(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def label(item: str) -> tuple[str, str]:
    """``("x", "2")`` for ``x=2``, ``("", item)`` for an unlabelled item."""
    sides = split_top(item, "=")
    if len(sides) == 2 and SIMPLE_LHS.fullmatch(sides[0]):
        return sides[0].strip(), sides[1]
    return "", item

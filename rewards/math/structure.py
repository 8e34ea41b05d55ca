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
    r"\\begin\{(?P<env>[pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(?P<body>(?:(?!\\begin\{).)*)"
    r"\\end\{(?P=env)\}",
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
    sides = split_top(text.split("\\approx")[0], "=")
    if len(sides) >= 2 and all(sides):
        # A chain `x = 5+5+1 = 11` states its first side equal to its last.
        lhs, rhs = sides[0], sides[-1]
        return ("eq", lhs, rhs, SIMPLE_LHS.fullmatch(lhs) is not None)
    return ("scalar", text)


# After normalisation relations are spelled `<`, `>`, `\\le`, `\\ge`, `\\neq` (see normalize).
_RELATION = r"(<|>|\\le|\\ge)"
_VAR = r"[a-zA-Z](?:_\{?\w+\}?)?"
_ONE_SIDED = re.compile(rf"^(?P<var>{_VAR})\s*{_RELATION}\s*(?P<bound>[^<>=]+)$")
_ONE_SIDED_FLIPPED = re.compile(rf"^(?P<bound>[^<>=]+?)\s*{_RELATION}\s*(?P<var>{_VAR})$")
_TWO_SIDED = re.compile(
    rf"^(?P<low>[^<>=]+?)\s*{_RELATION}\s*(?P<var>{_VAR})\s*{_RELATION}\s*(?P<high>[^<>=]+)$"
)
_NEGATED = re.compile(rf"^-\s*(?P<var>{_VAR})\s*{_RELATION}\s*(?P<bound>[^<>=]+)$")
_NOT_EQUAL = re.compile(rf"^(?P<var>{_VAR})\s*\\neq\s*(?P<bound>[^<>=]+)$")
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}


def _inequality_interval(text: str) -> str | None:
    """``x > 3`` and ``3 < x`` -> ``(3, \\infty)``; ``1 \\le x < 3`` and ``3 > x \\ge 1`` ->
    ``[1, 3)``; ``x \\neq 2`` -> ``(-\\infty, 2) \\cup (2, \\infty)``; None for anything else."""
    if m := _NOT_EQUAL.match(text):
        bound = m["bound"].strip()
        return f"(-\\infty, {bound}) \\cup ({bound}, \\infty)"
    if m := _TWO_SIDED.match(text):
        low, op1, op2, high = m["low"].strip(), m[2], m[4], m["high"].strip()
        if op1 in (">", "\\ge") and op2 in (">", "\\ge"):  # 3 > x \ge 1
            low, op1, op2, high = high, _FLIP[op2], _FLIP[op1], low
        if op1 in ("<", "\\le") and op2 in ("<", "\\le"):
            left = "(" if op1 == "<" else "["
            right = ")" if op2 == "<" else "]"
            return f"{left}{low}, {high}{right}"
        return None
    if m := _ONE_SIDED.match(text):
        op, bound = m[2], m["bound"].strip()
    elif m := _NEGATED.match(text):  # -x > -1 is x < 1
        op, bound = _FLIP[m[2]], f"-({m['bound'].strip()})"
    elif m := _ONE_SIDED_FLIPPED.match(text):
        op, bound = _FLIP[m[2]], m["bound"].strip()
    else:
        return None
    if op == "<":
        return f"(-\\infty, {bound})"
    if op == ">":
        return f"({bound}, \\infty)"
    return f"(-\\infty, {bound}]" if op == "\\le" else f"[{bound}, \\infty)"


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

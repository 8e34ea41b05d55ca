"""Size habits from ../shared/STYLE.md, kept true by reading every library module's source: no
module over 400 lines, no function over 80, no call with more than 6 positional arguments."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("assay", "envs", "rewards", "trainers", "pretraining", "analysis")
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
MAX_LINES, MAX_FUNCTION, MAX_POSITIONAL = 400, 80, 6


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_the_library_is_found():
    assert len(SOURCES) > 100 and (ROOT / "trainers" / "rl" / "learner.py") in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_functions_and_calls_stay_small(path):
    source = path.read_text(encoding="utf-8")
    problems = []
    if source.count("\n") > MAX_LINES:
        problems.append(f"{source.count(chr(10))} lines (split the module)")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION:
                problems.append(f"{_where(path, node)} {node.name} is {length} lines")
        elif isinstance(node, ast.Call) and len(node.args) > MAX_POSITIONAL:
            problems.append(
                f"{_where(path, node)} {ast.unparse(node.func)} takes {len(node.args)} "
                "positional arguments (name them)"
            )
    assert not problems, "; ".join(problems)

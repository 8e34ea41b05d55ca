"""The layers stay layers: read every module's imports (top-level and inside functions) from
its source, and check that no two modules import each other through any chain, that the
packages form a stack, and that ``assay``'s plumbing and ``trainers.algos`` stay light."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("assay", "envs", "rewards", "trainers", "pretraining", "analysis")
# What each layer may import (besides itself): a stack, the command line on top.
ALLOWED = {
    "assay": set(),  # errors, config, models, runs, checkpoints, distributed, trackers, paths
    "rewards": {"assay"},
    "envs": {"assay", "rewards"},
    "trainers": {"assay", "envs", "rewards"},
    "pretraining": {"assay", "envs"},
    "analysis": {"assay", "pretraining"},
    "assay.cli": {"assay", "envs", "rewards", "trainers", "pretraining", "analysis"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (the longest prefix that is one), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {r for a in node.names if (r := _resolve(a.name))}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}") or _resolve(node.module)
                if target:
                    found.add(target)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> str:
    return "assay.cli" if module.startswith("assay.cli") else module.split(".")[0]


def test_no_module_imports_itself_through_a_chain_of_others():
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_each_package_imports_only_the_layers_below_it():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) != _layer(module) and _layer(target) not in ALLOWED[_layer(module)]
    )
    assert wrong == []


def test_nothing_but_the_command_line_imports_the_command_line():
    assert not [m for m, t in GRAPH.items() if _layer(m) != "assay.cli" and "assay.cli" in {
        _layer(x) for x in t}]  # fmt: skip


def test_the_algorithms_load_without_transformers():
    code = "import sys, trainers.algos; assert 'transformers' not in sys.modules, 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

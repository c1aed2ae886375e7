"""The package's shape: subpackages with a docstring and a curated API, no import cycles, no reaching
for another module's private names, small modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fhnkit"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) of every `from ... import ...` in module `name`, wherever it
    stands (function-level imports count: they close cycles too), resolved to absolute names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def dependencies(name: str) -> set[str]:
    """The fhnkit modules `name` imports (a `from pkg import submodule` counts as the submodule)."""
    deps = set()
    for target, names in imports_of(name):
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        deps.update(submodules if names and len(submodules) == len(names) else [*submodules, target])
    return {d for d in deps if d in MODULES and d != name}


def test_every_stage_is_a_subpackage():
    assert SUBPACKAGES == ["analysis", "cell", "cli", "cluster", "datasets", "gpu_check", "inference", "nets",
                           "plan", "resampling", "solvers", "training"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_says_what_it_owns_and_lists_its_api(name):
    module = importlib.import_module(f"fhnkit.{name}")
    assert module.__doc__ and len(module.__doc__.strip()) > 40, name
    exported = getattr(module, "__all__", None)
    assert exported, f"fhnkit.{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"fhnkit.{name}.__all__ names what it does not define: {missing}"
    assert all(not n.startswith("_") for n in exported), exported


def test_no_import_cycles():
    graph = {name: dependencies(name) for name in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    offenders = [f"{name}: from {target} import {n}" for name in MODULES for target, names in imports_of(name)
                 if target.startswith("fhnkit") for n in names if n.startswith("_") and n != "__version__"]
    assert not offenders, offenders


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    n_lines = len(MODULES[name].read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{name} has {n_lines} lines; split it by concept"


def test_the_checker_finds_a_cycle(tmp_path, monkeypatch):
    """The cycle check is real: two modules importing each other are found."""
    pkg = tmp_path / "fhnkit" / "x"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "fhnkit")
    mods = {module_name(p): p for p in (tmp_path / "fhnkit").rglob("*.py")}
    monkeypatch.setattr(__import__(__name__), "MODULES", mods)
    assert dependencies("fhnkit.x.a") == {"fhnkit.x.b"} and dependencies("fhnkit.x.b") == {"fhnkit.x.a"}

"""The shape of every package (and the benchmarks): small files, short functions, no import loops, errors in errors.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "remediation", "incidents_db", "sim", "playbooks")
SIZED = (*PACKAGES, "benchmarks")
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def _sources(package: str) -> dict[str, Path]:
    """Return module name -> file for a package's sources (Alembic's migration scripts are not ours to split)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Return the package modules a file imports, TYPE_CHECKING and function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every import loop (a path that comes back to where it started), each once."""
    loops: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                loops.append([*path, start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return loops


def test_the_loop_finder_sees_a_two_module_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_loops(package: str) -> None:
    sources = _sources(package)
    graph = {name: _imports(path, set(sources)) - {name} for name, path in sources.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("package", SIZED)
def test_files_and_functions_stay_small(package: str) -> None:
    too_big = []
    for name, path in _sources(package).items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            too_big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []


@pytest.mark.parametrize("package", PACKAGES)
def test_exceptions_are_defined_in_errors_py(package: str) -> None:
    elsewhere = []
    for name, path in _sources(package).items():
        if name == "errors" or name.endswith(".errors"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception", "Warning"))
                for base in node.bases
            ):
                elsewhere.append(f"{name}.{node.name}")
    assert elsewhere == []

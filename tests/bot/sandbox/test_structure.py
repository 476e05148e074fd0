"""The sandbox's shape: small modules, short functions, no import loops, errors in errors.py, a stable API."""

from __future__ import annotations

import ast
from pathlib import Path

import bot.sandbox
from bot.sandbox.webapi import METHODS

SANDBOX = Path(bot.sandbox.__file__).resolve().parent
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = ("bot", "sandbox", *path.relative_to(SANDBOX).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SANDBOX.rglob("*.py"))}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Return the sandbox modules a file imports, TYPE_CHECKING and function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every import loop (a path that comes back to where it started)."""
    loops: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                loops.append([*path, start])
            elif nxt not in path and nxt > start:  # report each loop once, from its smallest module
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return loops


def test_no_import_loops_inside_the_sandbox() -> None:
    sources = _sources()
    graph = {name: _imports(path, set(sources)) - {name} for name, path in sources.items()}
    assert _cycles(graph) == []


def test_the_loop_finder_sees_a_two_module_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]


def test_files_and_functions_stay_small() -> None:
    too_big = []
    for name, path in _sources().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            too_big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []


def test_exceptions_are_defined_in_errors_py() -> None:
    elsewhere = []
    for name, path in _sources().items():
        if name == "bot.sandbox.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and (base.id.endswith(("Error", "Exception")))
                for base in node.bases
            ):
                elsewhere.append(f"{name}.{node.name}")
    assert elsewhere == []


def test_the_public_api_is_unchanged() -> None:
    assert sorted(bot.sandbox.__all__) == [
        "AppDriver",
        "Attempt",
        "ChannelSpec",
        "Delivery",
        "DeliveryError",
        "SandboxError",
        "SandboxOptions",
        "SlackSandbox",
        "UserSpec",
        "UsergroupSpec",
        "Workspace",
        "WorkspaceConfig",
        "WorkspaceConfigError",
    ]
    assert all(getattr(bot.sandbox, name) is not None for name in bot.sandbox.__all__)


def test_one_dispatcher_table_names_every_web_api_method() -> None:
    assert sorted(METHODS) == [
        "auth.test",
        "chat.getPermalink",
        "chat.postEphemeral",
        "chat.postMessage",
        "chat.update",
        "conversations.history",
        "conversations.info",
        "conversations.join",
        "conversations.list",
        "conversations.replies",
        "usergroups.users.list",
        "users.info",
        "views.open",
        "views.update",
    ]

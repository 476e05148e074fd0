"""Imports point down: bot -> remediation -> incidents_db / sim -> playbooks. An upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED: dict[str, set[str]] = {
    "bot": {"bot", "remediation", "incidents_db", "sim", "playbooks"},
    "remediation": {"remediation", "incidents_db", "sim", "playbooks"},
    "incidents_db": {"incidents_db", "playbooks"},
    "sim": {"sim", "playbooks"},
    "playbooks": {"playbooks"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Return (top-level package, line) for every import of one of our packages in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return {(pkg, line) for pkg, line in found if pkg in ALLOWED}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_point_down(package: str) -> None:
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported, line in imported_packages(path):
            if imported not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_the_scanner_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import bot.cli\nfrom remediation import errors\nfrom . import sibling\n")
    assert {pkg for pkg, _ in imported_packages(bad)} == {"bot", "remediation"}


# Inside bot/: each part imports only the parts listed for it (itself always allowed). Top to bottom:
# cli > demo > server, feeds > app, alerts > notify > services > settings > errors; the sandbox is a
# stand-in for Slack and knows nothing of the bot.
BOT_LAYERS: dict[str, set[str]] = {
    "cli": {
        "demo",
        "server",
        "feeds",
        "app",
        "alerts",
        "observe",
        "notify",
        "services",
        "metrics",
        "settings",
        "errors",
        "sandbox",
    },
    "demo": {
        "server",
        "app",
        "alerts",
        "observe",
        "notify",
        "services",
        "metrics",
        "settings",
        "errors",
        "sandbox",
    },
    "server": {"app", "alerts", "observe", "notify", "services", "metrics", "settings", "errors"},
    "feeds": {"alerts", "notify", "services", "metrics", "settings", "errors"},
    "app": {"observe", "notify", "services", "metrics", "settings", "errors"},
    "alerts": {"notify", "services", "metrics", "settings", "errors"},
    "observe": {"services", "metrics", "settings", "errors"},
    "notify": {"services", "metrics", "settings", "errors"},
    "services": {"metrics", "settings", "errors"},
    "metrics": set(),
    "settings": {"errors"},
    "errors": set(),
    "sandbox": {"errors"},
}
# bot/tracing.py (the SDK set-up and trace hand-overs) sits beside services: every part above may use it
BOT_LAYERS["tracing"] = {"settings", "errors"}
for _above in ("cli", "demo", "server", "feeds", "app", "alerts", "observe", "notify", "services"):
    BOT_LAYERS.get(_above, set()).add("tracing")


def bot_part(module: str) -> str | None:
    """Return the part of bot/ a dotted module belongs to (``bot.app.cards`` -> ``app``), None outside bot."""
    parts = module.split(".")
    return parts[1] if parts[0] == "bot" and len(parts) > 1 else None


def bot_imports(path: Path) -> set[tuple[str, int]]:
    """Return (part of bot/, line) for every import of bot's own modules in a file, relative ones refused."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "bot":
                modules = [f"bot.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.add(("<relative import>", node.lineno))
        line = getattr(node, "lineno", 0)
        found.update((part, line) for m in modules if (part := bot_part(m)))
    return found


def test_every_part_of_bot_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in (ROOT / "bot").iterdir()}
    parts = {p for p in parts if not p.startswith(("_", ".")) and p not in {"py"}}
    parts = {p for p in parts if (ROOT / "bot" / p).is_dir() or (ROOT / "bot" / f"{p}.py").is_file()}
    assert parts - {"__init__"} == set(BOT_LAYERS)


@pytest.mark.parametrize("part", sorted(BOT_LAYERS))
def test_bot_parts_import_down(part: str) -> None:
    where = ROOT / "bot" / part
    files = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports bot.{imported}"
        for path in files
        for imported, line in bot_imports(path)
        if imported != part and imported not in BOT_LAYERS[part]
    ]
    assert not violations, "imports against bot's order:\n" + "\n".join(violations)


def test_the_bot_scanner_sees_parts(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text(
        "from bot.app.cards import x\nimport bot.cli.main\nfrom bot import services\nfrom . import y\n"
    )
    assert {part for part, _ in bot_imports(bad)} == {"app", "cli", "services", "<relative import>"}


def test_the_bot_order_has_no_loops() -> None:
    def below(part: str, seen: frozenset[str]) -> None:
        for lower in BOT_LAYERS[part]:
            assert lower not in seen, f"bot's order loops through {lower}"
            below(lower, seen | {lower})

    for part in BOT_LAYERS:
        below(part, frozenset({part}))

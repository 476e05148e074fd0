"""bot/ below the CLI holds no SQL: the app, the intake, notifications, the server and the demo call store functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = (
    "bot/app",
    "bot/alerts",
    "bot/notify",
    "bot/feeds",
    "bot/observe",
    "bot/server.py",
    "bot/services.py",
    "bot/demo",
)
# names that only type sessions and engines handed around
TYPES = {"sqlalchemy": {"Engine"}, "sqlalchemy.orm": {"Session", "sessionmaker"}}
SESSION_CALLS = {"query", "scalar", "scalars"}


def sql_in(path: Path) -> list[str]:
    """Return ``line: what`` for each SQLAlchemy use beyond type names, and each model imported, in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "incidents_db.models":
                found.append(f"{node.lineno}: models imported (use a store function)")
            elif node.module.split(".")[0] == "sqlalchemy":
                extra = {a.name for a in node.names} - TYPES.get(node.module, set())
                found += [f"{node.lineno}: from {node.module} import {name}" for name in sorted(extra)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_CALLS
        ):
            found.append(f"{node.lineno}: .{node.func.attr}(...)")
    return found


@pytest.mark.parametrize("folder", CHECKED)
def test_no_sql_below_the_cli(folder: str) -> None:
    where = ROOT / folder
    files = [where] if where.is_file() else sorted(where.rglob("*.py"))
    assert files, f"nothing to check at {folder}"
    problems = [f"{p.relative_to(ROOT)}:{hit}" for p in files for hit in sql_in(p)]
    assert not problems, "SQL in bot/ (move it into a store function):\n" + "\n".join(problems)


def test_the_scanner_catches_a_query(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text(
        "import sqlalchemy as sa\nfrom sqlalchemy.orm import Session, aliased\n"
        "from incidents_db.models import Incident\ns.query(Incident)\n"
    )
    assert [hit.split(":")[0] for hit in sql_in(bad)] == ["1", "2", "3", "4"]

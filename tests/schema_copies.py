"""Stores at the newest schema, copied from one store migrated once per test process.

Running every migration for each test cost about a second on PostgreSQL and a third of one on SQLite,
hundreds of times a run. A copy holds exactly what the migrations wrote (tables, indexes, sequences,
the alembic_version row). The tests of the migrations themselves still start from empty databases
(``sqlite_url``, ``postgres_url``, ``db_url``).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import sqlalchemy as sa

from incidents_db.db import upgrade


class SchemaCopies:
    """Fills empty databases with a copy of a migrated one (migrated on first use, per kind)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite_template: Path | None = None
        self.postgres_template: str | None = None
        self.admin: sa.Engine | None = None

    def fill_sqlite(self, url: str) -> None:
        """Give the SQLite file of ``url`` (not yet created) the migrated schema."""
        if self.sqlite_template is None:
            template = self.root / "template.sqlite"
            upgrade(f"sqlite:///{template}")
            self.sqlite_template = template
        source, target = (
            sqlite3.connect(self.sqlite_template),
            sqlite3.connect(sa.make_url(url).database or ""),
        )
        try:
            source.backup(target)  # the backup API copies a WAL-mode file whole and consistent
        finally:
            source.close()
            target.close()

    def fill_postgres(self, admin_url: str, url: str) -> None:
        """Recreate the empty PostgreSQL database of ``url`` as a copy of the migrated template."""
        if self.admin is None:
            self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        if self.postgres_template is None:
            template = f"remediate_tpl_{uuid.uuid4().hex[:12]}"
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{template}"'))
            upgrade(sa.make_url(admin_url).set(database=template).render_as_string(hide_password=False))
            self.postgres_template = template
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.postgres_template}"'))

    def close(self) -> None:
        """Drop the PostgreSQL template, if one was made."""
        if self.admin is None:
            return
        if self.postgres_template is not None:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.postgres_template}" WITH (FORCE)'))
        self.admin.dispose()

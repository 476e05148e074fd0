"""Engines, sessions and schema migrations (Alembic, run programmatically from the package)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session, sessionmaker

from incidents_db.errors import DatabaseUnavailableError, SchemaError
from incidents_db.redact import redact_text, redact_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 65_536


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (the bot, `incidents list`) run while an import writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB page cache instead of 2 MiB: index maintenance of a large timeline stays in memory.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """Create an engine for a SQLite or PostgreSQL URL (SQLite: WAL, foreign keys, busy timeout).

    Args:
        url: SQLAlchemy URL, `sqlite:///PATH` or `postgresql+psycopg://USER@HOST/DB`.
        **kwargs: passed on to `sqlalchemy.create_engine`.

    Returns:
        The engine; a SQLite file's parent directory is created when missing.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseUnavailableError(
            f"database URL {redact_url(url)!r} is not a valid SQLAlchemy URL; expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # psycopg prepares a statement after 5 runs and PostgreSQL then reuses a generic plan made while the
    # tables were small (a sequential scan over `id IN (...)`), which turned a 100k import quadratic.
    # Planning each statement with its real values costs far less than that.
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("prepare_threshold", None)
    return sa.create_engine(parsed, connect_args=connect_args, **kwargs)


def make_sessionmaker(engine: sa.Engine) -> sessionmaker[Session]:
    """Return a session factory bound to the engine (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def ping(*, db_session: Session) -> None:
    """Run a trivial query, so an unreachable store raises here."""
    db_session.execute(sa.text("SELECT 1"))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with this version of remediate."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise SchemaError("no migrations found inside the incidents_db package; the install is broken")
    return head


def _connect_error(url: str, exc: sa.exc.DBAPIError) -> DatabaseUnavailableError:
    reason = redact_text(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
    return DatabaseUnavailableError(
        f"cannot open the store at {redact_url(url)}: {reason}. Check REMEDIATE_DATABASE_URL / --database-url "
        "and that the server is running"
    )


def current_revision(engine: sa.Engine) -> str | None:
    """Return the schema revision of the database behind the engine (None when never upgraded)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def current(url: str) -> str | None:
    """Return the schema revision of the database at `url` (None when never upgraded)."""
    engine = make_engine(url)
    try:
        return current_revision(engine)
    except sa.exc.DBAPIError as exc:
        raise _connect_error(url, exc) from None
    finally:
        engine.dispose()


_UPGRADE_LOCK = threading.Lock()


def upgrade_engine(engine: sa.Engine, revision: str = "head") -> str:
    """Run the migrations up to `revision` on the engine's database and return the resulting revision."""
    url = engine.url.render_as_string(hide_password=False)
    head = head_revision()
    with _UPGRADE_LOCK:
        try:
            known = current_revision(engine)
            if known is not None and known != head and known not in _all_revisions():
                raise SchemaError(
                    f"the store at {redact_url(url)} is at schema revision {known}, newer than this remediate "
                    f"knows (head {head}); upgrade remediate"
                )
            if known == head and revision == "head":
                return head
            config = _alembic_config()
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Two processes upgrading at once queue here instead of racing on CREATE TABLE.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7216354)"))
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
            result = current_revision(engine)
        except sa.exc.DBAPIError as exc:
            raise _connect_error(url, exc) from None
    return result or ""


def _all_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at `url` to `revision` (default: newest) and return the resulting revision."""
    engine = make_engine(url)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def open_store(url: str, *, upgrade_schema: bool = True) -> sa.Engine:
    """Return an engine on the store at `url`, migrating it to the newest schema first when asked."""
    engine = make_engine(url)
    if upgrade_schema:
        try:
            upgrade_engine(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine

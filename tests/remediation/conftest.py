"""Fixtures: a migrated store (SQLite and PostgreSQL), the shipped guardrails, a counting executor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from incidents_db.db import make_engine, make_sessionmaker
from playbooks.catalog import builtin_catalog
from remediation.approvals.service import Guard
from remediation.executors.base import ExecRequest, Outcome
from remediation.guardrails.config import load_rbac

ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (
    "U024BE7LH",
    "U02B3C4D5",
    "U03C4D5E6",
    "U04D5E6F7",
    "U05E6F7G8",
    "U06F7G8H9",
)
KINDS = {
    "checkoutservice": "service",
    "frontend": "frontend",
    "redis-cart": "cache",
    "mongodb-rate": "database",
}


class Clock:
    """A settable clock (Tuesday 10:00 UTC, outside every example freeze)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class CountingExecutor:
    """Counts real executions per request id (thread-safe); can be told to fail or raise."""

    kind: str = "sim"
    calls: list[str] = field(default_factory=list)
    raise_error: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        if dry_run:
            return Outcome("dry_run", f"would {request.action.id} {request.target}")
        with self.lock:
            self.calls.append(request.request_id)
        if self.raise_error:
            raise ConnectionError("lost the connection half way")
        return Outcome("succeeded", "done")


@dataclass
class Store:
    url: str
    engine: sa.Engine
    factory: sessionmaker[Session]
    guard: Guard
    clock: Clock


@pytest.fixture
def store(migrated_db_url: str) -> Iterator[Store]:
    db_url = migrated_db_url
    engine = (
        make_engine(db_url, pool_size=60, max_overflow=10)
        if db_url.startswith("postgresql")
        else make_engine(db_url)
    )
    clock = Clock()
    guard = Guard(config=load_rbac(), catalog=builtin_catalog(), clock=clock, service_kinds=KINDS)
    yield Store(db_url, engine, make_sessionmaker(engine), guard, clock)
    engine.dispose()


@pytest.fixture
def sqlite_store(migrated_sqlite_url: str) -> Iterator[Store]:
    sqlite_url = migrated_sqlite_url
    engine = make_engine(sqlite_url)
    clock = Clock()
    guard = Guard(config=load_rbac(), catalog=builtin_catalog(), clock=clock, service_kinds=KINDS)
    yield Store(sqlite_url, engine, make_sessionmaker(engine), guard, clock)
    engine.dispose()

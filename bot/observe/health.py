"""`/livez` and `/readyz`: is the process up, and may it take traffic (docs/observability.md).

Ready means: the store answers, its schema is at the migration this version ships, and the Slack bot
token was accepted by ``auth.test`` (asked once; a success is cached for the life of the process, a
failure is asked again at the next probe). The same telemetry-loss summary /healthz shows lives here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from bot.services import Services
from incidents_db import db
from remediation.monitoring import live

VerifyToken = Callable[[], Any]  # raises when Slack refuses the token (slack_sdk's auth_test)


@dataclass
class Readiness:
    """Readiness checks of one app; ``verify_token`` is its Web API client's ``auth_test``."""

    services: Services
    verify_token: VerifyToken | None
    _verified: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _head: str | None = None

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Return (ready, what each check found)."""
        checks: dict[str, Any] = {"store": "ok", "migrations": "ok", "slack": "ok"}
        try:
            with self.services.sessions() as s:
                db.ping(db_session=s)
                bind = s.get_bind()
                engine = bind if isinstance(bind, Engine) else bind.engine
            current = db.current_revision(engine)
            self._head = self._head or db.head_revision()
            if current != self._head:
                checks["migrations"] = f"at {current}, expected {self._head}: run `remediate db upgrade`"
        except Exception as exc:
            checks["store"] = f"unavailable: {type(exc).__name__}"
            checks.pop("migrations")
        checks["slack"] = self._slack()
        return all(v == "ok" for v in checks.values()), checks

    def _slack(self) -> str:
        if self.verify_token is None:
            return "ok"
        with self._lock:
            if self._verified:
                return "ok"
            try:
                self.verify_token()
            except Exception as exc:  # slack_sdk raises SlackApiError, or a transport error
                return f"token not verified: {type(exc).__name__}"
            self._verified = True
            return "ok"


def telemetry_health(services: Services) -> dict[str, Any]:
    """Return the services whose snapshots went stale and how complete fresh signals are (F7, M9)."""
    with services.sessions() as s:
        seen = live.telemetry(
            db_session=s, now=services.clock(), max_age_s=services.settings.snapshot_max_age_s
        )
    ratio = seen.completeness
    return {
        "lost": sorted(seen.lost),
        "completeness": round(ratio, 3) if ratio is not None else None,
        "newest_age_s": round(seen.newest_age_s, 1) if seen.newest_age_s is not None else None,
    }

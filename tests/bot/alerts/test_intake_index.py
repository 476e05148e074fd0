"""Intake by fingerprint key groups exactly as the old scan of every open incident's alerts did.

A seeded stream of deliveries (repeats, flaps, groups, new services, quiet gaps past the grouping window,
incidents resolving themselves) goes through `ingest` twice, on two stores: once reading the
delivery's fingerprints by key (what the webhook does) and once with the old full scans in its place
(`incidents.alert_states`, and for an alert with no incident yet `incidents.open_for_service_scan` and
`incidents.next_incident_id_scan`). Every delivery's answer and every timeline must match, and the key
table must equal the scan after every delivery, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from bot.alerts.intake import ingest
from bot.alerts.models import AlertIn
from bot.services import Services, build_services
from bot.settings import load_settings
from incidents_db import incidents
from incidents_db.fingerprints import states_of
from incidents_db.service import list_incidents

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
Status = Literal["firing", "resolved"]
FLAPS: tuple[Status, ...] = ("firing", "firing", "resolved")
SERVICES = ("cartservice", "checkoutservice", "frontend", "redis-cart")


def scan(*, db_session: Session, fingerprints: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The old read: every alert event of every open incident."""
    return incidents.alert_states(db_session=db_session)


class Clock:
    """A clock the stream moves on."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _services(url: str, tmp_path: Path, clock: Clock) -> Services:
    settings = load_settings(database_url=url, data_dir=tmp_path, group_window_s=600)
    return build_services(settings, clock=clock)


def _alert(service: str, k: int, status: Status, group: str | None, fp: str = "") -> AlertIn:
    return AlertIn(
        source="generic", name=f"Alert{k % 5}", service=service, status=status, fingerprint=fp or f"fp-{k}",
        group=group,
    )  # fmt: skip


def _episode(rng: random.Random) -> list[tuple[int, list[AlertIn]]]:
    """One outage on a service: its alerts fire (re-sent, flapping), then all resolve."""
    service = rng.choice(SERVICES)
    keys = rng.sample(range(14), rng.randint(1, 4))
    group = rng.choice([None, f"g-{service}"])
    steps = []
    for _ in range(rng.randint(1, 4)):
        alerts = [_alert(service, k, rng.choice(FLAPS), group) for k in keys]
        steps.append((rng.choice([0, 1, 3]), rng.sample(alerts, rng.randint(1, len(alerts)))))
    steps.append((rng.choice([0, 1, 15]), [_alert(service, k, "resolved", group) for k in keys]))
    return steps


def _deliveries(seed: int, n: int) -> list[tuple[int, list[AlertIn]]]:
    """(minutes to wait before, alerts) per delivery: outages interleaved, fingerprints reused across them."""
    rng = random.Random(seed)
    episodes = [_episode(rng) for _ in range(n)]
    out = []
    while episodes:
        episode = rng.choice(episodes)
        out.append(episode.pop(0))
        if not episode:
            episodes.remove(episode)
        if rng.random() < 0.1:  # a resolution nobody waits for, and a quiet gap past the grouping window
            out.append((rng.choice([0, 20]), [_alert(rng.choice(SERVICES), 99, "resolved", None)]))
    return out


def _timelines(services: Services) -> list[tuple[object, ...]]:
    with services.sessions() as s:
        rows = list_incidents(db_session=s, limit=1000)
        return [
            (
                r.id, r.status, r.title,
                [
                    (e["type"], e.get("fingerprint"), e.get("status"), e["at"])
                    for e in incidents.record(db_session=s, incident_id=r.id)["events"]
                    if e["type"] in ("alert", "resolved")
                ],
            )
            for r in rows
        ]  # fmt: skip


def _run_both(indexed: Services, reference: Services, clocks: tuple[Clock, Clock], seed: int) -> int:
    created = 0
    for wait, alerts in _deliveries(seed, 12):
        for clock in clocks:
            clock.now += timedelta(minutes=wait)
        got = ingest(indexed, alerts)
        assert got == ingest(
            reference,
            alerts,
            _read_states=scan,
            _open_for_service=incidents.open_for_service_scan,
            _next_id=incidents.next_incident_id_scan,
        )
        created += len(got.created)
        with indexed.sessions() as s:
            every = [f"fp-{k}" for k in range(14)]
            assert states_of(db_session=s, fingerprints=every) == incidents.alert_states(db_session=s)
    return created


def test_keyed_intake_groups_as_the_scan_did(tmp_path: Path, db_url: str) -> None:
    clocks = (Clock(), Clock())
    reference_url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    indexed = _services(db_url, tmp_path / "a", clocks[0])
    reference = _services(reference_url, tmp_path / "b", clocks[1])
    created = sum(_run_both(indexed, reference, clocks, seed) for seed in (1, 2))
    assert created >= 4  # the stream did open (and close) several incidents
    assert _timelines(indexed) == _timelines(reference)
    assert any(status == "resolved" for _, status, _, _ in _timelines(indexed))


def test_concurrent_deliveries_record_each_alert_once_in_one_incident_per_service(
    tmp_path: Path, db_url: str
) -> None:
    services = _services(db_url, tmp_path, Clock())
    # 24 deliveries at once, 6 per service, each re-sending 3 of its service's 5 alerts
    rng = random.Random(7)
    deliveries = [
        [_alert(svc, k, "firing", None, fp=f"{svc}-{k}") for k in rng.sample(range(5), 3)]
        for svc in SERVICES
        for _ in range(6)
    ]
    rng.shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda alerts: ingest(services, alerts), deliveries))
    sent = {a.fingerprint for d in deliveries for a in d}
    assert sum(r.recorded for r in results) == len(sent)  # each alert once, its repeats ignored
    assert sum(len(r.created) for r in results) == len(SERVICES)
    with services.sessions() as s:
        held = states_of(db_session=s, fingerprints=sent)
        assert held == incidents.alert_states(db_session=s)
        assert len(set(held)) == len(sent) and len({inc for inc, _ in held.values()}) == len(SERVICES)

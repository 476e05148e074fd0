"""The rollback rule and the safety freeze in scripted runs on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import jobruns
from incidents_db.db import make_sessionmaker, open_store, session_scope
from incidents_db.models import ApprovalRequest, AuditEntry, Incident, Suggestion
from incidents_db.outbox import OutboxMessage
from remediation.audit.service import append
from remediation.loop import freeze
from remediation.loop.config import LoopConfig, RollbackRule
from remediation.loop.runner import run_job
from remediation.loop.watch import mark_harmful
from remediation.registry import service

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
V1_PROMOTED, V2_PROMOTED = NOW - timedelta(days=2), NOW - timedelta(hours=12)


@pytest.fixture
def store(migrated_db_url: str, tmp_path: Path) -> Iterator[tuple[sa.Engine, LoopConfig]]:
    db_url = migrated_db_url
    engine = open_store(db_url)
    rule = RollbackRule(window_s=86400.0, min_samples=10, success_drop=0.15, denial_rise=0.10)
    config = LoopConfig(data_dir=tmp_path, database_url=db_url, rule=rule, promote=True, channel="C-INC")
    with session_scope(make_sessionmaker(engine)) as s:
        s.add(
            Incident(
                id="INC-1", title="checkout errors", severity="sev2", status="open", opened_at=V1_PROMOTED
            )
        )
        for version, parent in (("v1", None), ("v2", "v1")):
            service.register(db_session=s, version=version, path=f"/nowhere/{version}", sha256="0" * 64,
                             parent=parent, metrics={}, config={})  # fmt: skip
        service.promote(db_session=s, version="v1").promoted_at = V1_PROMOTED
        service.promote(db_session=s, version="v2").promoted_at = V2_PROMOTED
    yield engine, config
    engine.dispose()


def shown(s: Session, version: str, at: datetime, n: int, state: str | None, *, risk: str = "low") -> None:
    """Record ``n`` top-1 suggestions of ``version`` shown at ``at``, each become a request in ``state``."""
    for _ in range(n):
        number = s.scalar(sa.select(sa.func.count()).select_from(Suggestion)) or 0
        request_id = None
        if state is not None:
            request_id = f"REQ-{number}"
            s.add(ApprovalRequest(id=request_id, incident_id="INC-1", action="restart_service", target=f"svc-{number}",
                                  params={}, risk=risk, requester="U1", state=state, created_at=at, updated_at=at))  # fmt: skip
            s.flush()
        s.add(Suggestion(incident_id="INC-1", created_at=at, policy_version=version, rank=1, action="restart_service",
                         target=f"svc-{number}", params={}, score=1.0, confidence=0.9, risk=risk, reason="",
                         request_id=request_id))  # fmt: skip
        s.flush()


def statuses(engine: sa.Engine) -> dict[str, str]:
    with session_scope(make_sessionmaker(engine)) as s:
        return {v.id: v.status for v in service.list_versions(db_session=s)}


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_regression_rolls_back_freezes_audits_and_announces(store: tuple[sa.Engine, LoopConfig]) -> None:
    engine, config = store
    with session_scope(make_sessionmaker(engine)) as s:
        before = V2_PROMOTED - timedelta(hours=6)
        shown(s, "v1", before, 9, "succeeded")
        shown(s, "v1", before, 1, "failed")
        after = V2_PROMOTED + timedelta(hours=1)
        shown(s, "v2", after, 4, "succeeded")
        shown(s, "v2", after, 6, "failed")
    ran = run_job(engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW)
    assert ran.outcome == "succeeded", ran.detail
    assert ran.detail["rolled_back_to"] == "v1" and ran.detail["frozen"] is True
    assert ran.detail["live"]["success_rate"] == 0.4 and ran.detail["before"]["success_rate"] == 0.9
    assert statuses(engine) == {"v1": "promoted", "v2": "retired"}
    with session_scope(make_sessionmaker(engine)) as s:
        state = freeze.state(db_session=s)
        assert state.frozen and "v2 regressed" in state.reason
        events = s.scalars(sa.select(AuditEntry.event).order_by(AuditEntry.seq)).all()
        assert "policy_rollback" in events and "learning_freeze" in events
        posts = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == "message")).all()
        assert len(posts) == 1 and posts[0].payload["channel"] == "C-INC"
        assert "rolled back to v1" in posts[0].payload["text"]
    # frozen: promote and retraining stop until a person unfreezes
    for job in ("promote", "retrain"):
        stopped = run_job(engine=engine, name=job, config=config, replica="r1", clock=lambda: NOW)
        assert stopped.outcome == "skipped" and "learning is frozen" in stopped.detail["reason"]
    # the next tick does not roll back again (v1 was promoted just now: nothing to judge yet)
    again = run_job(
        engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW + timedelta(minutes=5)
    )
    assert "rolled_back_to" not in again.detail and statuses(engine)["v1"] == "promoted"
    with session_scope(make_sessionmaker(engine)) as s:
        freeze.unfreeze(db_session=s, actor="U1", reason="looked at it", now=NOW + timedelta(minutes=10))
    skipped = run_job(engine=engine, name="promote", config=config, replica="r1")
    assert "nothing to promote" in skipped.detail["reason"]  # no longer frozen: it looks for a candidate


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_too_few_samples_or_a_small_drop_is_no_breach(store: tuple[sa.Engine, LoopConfig]) -> None:
    engine, config = store
    with session_scope(make_sessionmaker(engine)) as s:
        shown(s, "v1", V2_PROMOTED - timedelta(hours=1), 10, "succeeded")
        shown(s, "v2", V2_PROMOTED + timedelta(hours=1), 9, "failed")  # one short of min_samples
    quiet = run_job(engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW)
    assert quiet.detail["breaches"] == [] and quiet.detail["frozen"] is False
    loose = replace(config, rule=replace(config.rule, min_samples=5, success_drop=1.0))
    assert (
        run_job(engine=engine, name="watch", config=loose, replica="r1", clock=lambda: NOW).detail["breaches"]
        == []
    )
    strict = replace(config, rule=replace(config.rule, min_samples=5))
    assert run_job(engine=engine, name="watch", config=strict, replica="r1", clock=lambda: NOW).detail[
        "breaches"
    ]
    assert statuses(engine)["v1"] == "promoted"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_denied_high_risk_top1_freezes_at_once_without_rolling_back(
    store: tuple[sa.Engine, LoopConfig],
) -> None:
    engine, config = store
    at = NOW - timedelta(hours=1)
    with session_scope(make_sessionmaker(engine)) as s:
        shown(s, "v2", at, 1, None, risk="high")
        append(db_session=s, actor="U1", event="request", decision="denied", reason="failover needs two approvers",
               action="restart_service", target="svc-0", incident_id="INC-1", at=at + timedelta(seconds=5))  # fmt: skip
    ran = run_job(engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW)
    assert ran.detail["frozen"] is True and "high-risk top-1" in ran.detail["safety"]
    assert "rolled_back_to" not in ran.detail and statuses(engine)["v2"] == "promoted"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_action_marked_harmful_freezes_learning(store: tuple[sa.Engine, LoopConfig]) -> None:
    engine, config = store
    with session_scope(make_sessionmaker(engine)) as s:
        shown(s, "v2", NOW - timedelta(hours=2), 1, "succeeded")
        mark_harmful(
            db_session=s,
            request_id="REQ-0",
            actor="U1",
            reason="it took checkout down",
            now=NOW - timedelta(hours=1),
        )
    ran = run_job(engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW)
    assert ran.detail["frozen"] is True and "REQ-0 marked harmful" in ran.detail["safety"]
    with session_scope(make_sessionmaker(engine)) as s:
        freeze.unfreeze(db_session=s, actor="U1", reason="fixed the playbook", now=NOW)
    # unfrozen by a person: the same old event is not judged again
    later = run_job(
        engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW + timedelta(minutes=5)
    )
    assert later.detail["frozen"] is False and later.detail["safety"] is None
    with session_scope(make_sessionmaker(engine)) as s:
        assert [r.outcome for r in jobruns.runs(db_session=s, job="watch")] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_more_guardrail_denials_of_top1_roll_back(store: tuple[sa.Engine, LoopConfig]) -> None:
    engine, config = store
    with session_scope(make_sessionmaker(engine)) as s:
        shown(s, "v1", V2_PROMOTED - timedelta(hours=2), 10, None)
        at = V2_PROMOTED + timedelta(hours=1)
        shown(s, "v2", at, 10, None)
        for n in range(13, 16):  # three of v2's ten top-1 suggestions (svc-10..svc-19) denied when requested
            append(db_session=s, actor="U1", event="request", decision="denied", reason="rate limit",
                   action="restart_service", target=f"svc-{n}", incident_id="INC-1", at=at + timedelta(minutes=1))  # fmt: skip
    ran = run_job(engine=engine, name="watch", config=config, replica="r1", clock=lambda: NOW)
    assert ran.detail["live"]["denial_rate"] == 0.3 and ran.detail["before"]["denial_rate"] == 0.0
    assert ran.detail["rolled_back_to"] == "v1" and "top-1 denials 0.30" in ran.detail["breaches"][0]
    assert statuses(engine) == {"v1": "promoted", "v2": "retired"}

"""The watch job: automatic rollback on a live regression, and the learning freeze on a safety breach.

The rule compares the promoted version with the previous one (the version `registry.rollback` would
restore) on what the store recorded about their top-1 suggestions: the success rate of the finished
requests they became, and the share of them a guardrail denied. The promoted version is read over the
last ``window_s`` since its promotion, the previous one over the ``window_s`` before that promotion.
A breach rolls back, freezes learning, writes the audit log and posts to the incident channel, in one
transaction. A safety breach (an executed action marked harmful, a guardrail-denied top-1 of high
risk) freezes learning at once, whatever the sample sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import outbox
from incidents_db.db import make_sessionmaker, session_scope
from incidents_db.models import ApprovalRequest, AuditEntry, Execution, PolicyVersion, Suggestion
from remediation.approvals import states as st
from remediation.audit.service import append
from remediation.errors import LoopError
from remediation.loop import freeze
from remediation.loop.config import JobContext, JobResult, RollbackRule
from remediation.registry import service

ACTOR = "remediate-loop"
HIGH_RISK = ("high", "critical")
FINISHED = (st.SUCCEEDED, st.FAILED, st.UNKNOWN)
HARMFUL_EVENT = "marked_harmful"


@dataclass(frozen=True)
class Figures:
    """One version's top-1 suggestions over a window: shown, finished, succeeded, denied, denied of high risk."""

    version: str
    shown: int = 0
    finished: int = 0
    succeeded: int = 0
    denied: int = 0
    denied_high_risk: int = 0

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished requests (None without any)."""
        return self.succeeded / self.finished if self.finished else None

    @property
    def denial_rate(self) -> float | None:
        """Denied / shown top-1 suggestions (None without any)."""
        return self.denied / self.shown if self.shown else None

    def as_json(self) -> dict[str, Any]:
        """Return the figures with their rates."""
        return {**asdict(self), "success_rate": self.success_rate, "denial_rate": self.denial_rate}


def _denied(session: Session, s: Suggestion) -> bool:
    """Whether a guardrail denied the suggestion: a denial of its request, or of the same fix after it was shown."""
    same_fix = sa.and_(AuditEntry.incident_id == s.incident_id, AuditEntry.action == s.action,
                       AuditEntry.target.is_(None) if s.target is None else AuditEntry.target == s.target,
                       AuditEntry.at >= s.created_at)  # fmt: skip
    mine = AuditEntry.request_id == s.request_id if s.request_id else sa.false()
    query = sa.select(AuditEntry.seq).where(AuditEntry.decision == "denied", sa.or_(mine, same_fix)).limit(1)
    return session.execute(query).first() is not None


def figures(session: Session, version: str, start: datetime, end: datetime) -> Figures:
    """Count one version's top-1 suggestions shown in [start, end) and what became of them."""
    rows = session.execute(
        sa.select(Suggestion, ApprovalRequest.state)
        .outerjoin(ApprovalRequest, ApprovalRequest.id == Suggestion.request_id)
        .where(
            Suggestion.policy_version == version,
            Suggestion.rank == 1,
            Suggestion.created_at >= start,
            Suggestion.created_at < end,
        )
    ).all()
    shown = finished = succeeded = denied = high = 0
    for suggestion, state in rows:
        shown += 1
        finished += state in FINISHED
        succeeded += state == st.SUCCEEDED
        if _denied(session, suggestion):
            denied += 1
            high += suggestion.risk in HIGH_RISK
    return Figures(version, shown, finished, succeeded, denied, high)


def previous_version(session: Session, current: PolicyVersion) -> PolicyVersion | None:
    """Return the version a rollback restores: the one promoted before ``current``, else its parent."""
    earlier = session.scalars(
        sa.select(PolicyVersion)
        .where(PolicyVersion.promoted_at.is_not(None), PolicyVersion.id != current.id)
        .order_by(PolicyVersion.promoted_at.desc())
    ).first()
    return earlier or (session.get(PolicyVersion, current.parent) if current.parent else None)


def breaches(rule: RollbackRule, now_: Figures, before: Figures) -> list[str]:
    """Return why ``now_`` regressed against ``before`` under ``rule`` (empty: no breach)."""
    found = []
    if now_.finished >= rule.min_samples and before.finished >= rule.min_samples:
        assert now_.success_rate is not None and before.success_rate is not None
        if now_.success_rate < before.success_rate - rule.success_drop:
            found.append(
                f"top-1 success {now_.success_rate:.2f} vs {before.success_rate:.2f} under {before.version}"
            )
    if now_.shown >= rule.min_samples and before.shown >= rule.min_samples:
        assert now_.denial_rate is not None and before.denial_rate is not None
        if now_.denial_rate > before.denial_rate + rule.denial_rise:
            found.append(
                f"top-1 denials {now_.denial_rate:.2f} vs {before.denial_rate:.2f} under {before.version}"
            )
    return found


def _harmful(session: Session, since: datetime) -> list[str]:
    """Return the requests whose executed action was marked harmful since ``since``."""
    marked = session.scalars(
        sa.select(AuditEntry.request_id).where(AuditEntry.event == HARMFUL_EVENT, AuditEntry.at >= since)
    )
    found = {str(r) for r in marked if r}
    rows = session.execute(
        sa.select(Execution.request_id, Execution.outcome).where(Execution.started_at >= since)
    )
    found.update(str(rid) for rid, outcome in rows if isinstance(outcome, dict) and outcome.get("harmful"))
    return sorted(found)


def _read(session: Session, ctx: JobContext) -> dict[str, Any]:
    """Return the live figures of the promoted and the previous version, and the safety events."""
    rule, now = ctx.config.rule, ctx.now
    window = timedelta(seconds=rule.window_s)
    state = freeze.state(db_session=session)
    since = now - window
    if not state.frozen and state.at is not None and state.at > since:
        since = state.at  # a person unfroze: what happened before is already judged
    current = service.promoted(db_session=session)
    out: dict[str, Any] = {"promoted": None, "since": since.isoformat(), "harmful": _harmful(session, since)}
    if current is None or current.promoted_at is None:
        return out
    start = max(current.promoted_at, since)
    live = figures(session, current.id, start, now + timedelta(microseconds=1))
    out.update(promoted=current.id, live=live)
    previous = previous_version(session, current)
    if previous is not None:
        out.update(previous=previous.id, before=figures(session, previous.id, current.promoted_at - window,
                                                        current.promoted_at))  # fmt: skip
    return out


def live_figures(ctx: JobContext) -> dict[str, Any]:
    """Return the rule's figures as JSON (the report job and `remediate learning status`)."""
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        read = _read(session, ctx)
    return {k: (v.as_json() if isinstance(v, Figures) else v) for k, v in read.items()}


def _post(session: Session, ctx: JobContext, text: str) -> None:
    outbox.enqueue(db_session=session, kind="message", payload={"channel": ctx.config.channel, "text": text},
                   now=ctx.now)  # fmt: skip


def _safety(session: Session, ctx: JobContext, read: dict[str, Any]) -> str | None:
    live: Figures | None = read.get("live")
    events = [f"executed action of request {r} marked harmful" for r in read["harmful"]]
    if live is not None and live.denied_high_risk:
        events.append(
            f"{live.denied_high_risk} high-risk top-1 suggestion(s) of {live.version} denied by a guardrail"
        )
    if not events:
        return None
    return "safety breach: " + "; ".join(events)


def watch(ctx: JobContext) -> JobResult:
    """Apply the rollback rule and the safety check; roll back and/or freeze learning on a breach."""
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        read = _read(session, ctx)
        detail = {k: (v.as_json() if isinstance(v, Figures) else v) for k, v in read.items()}
        safety = _safety(session, ctx, read)
        found = breaches(ctx.config.rule, read["live"], read["before"]) if "before" in read else []
        if found:
            detail["rolled_back_to"] = _roll_back(session, ctx, read["promoted"], found)
        if safety and not freeze.state(db_session=session).frozen:
            freeze.freeze(db_session=session, actor=ACTOR, reason=safety, now=ctx.now)
            _post(session, ctx, f":octagonal_sign: Learning frozen: {safety}. "
                                "`remediate learning unfreeze` lifts it once someone has looked.")  # fmt: skip
        detail.update(breaches=found, safety=safety, frozen=freeze.state(db_session=session).frozen)
    return JobResult("succeeded", detail)


def _roll_back(session: Session, ctx: JobContext, version: str, found: list[str]) -> str:
    """Roll back, audit, freeze and announce it (in the caller's transaction); return the restored version."""
    restored = service.rollback(db_session=session).id
    reason = f"{version} regressed ({'; '.join(found)}): rolled back to {restored}"
    append(db_session=session, actor=ACTOR, event="policy_rollback", decision="allowed", reason=reason,
           policy_version=restored, at=ctx.now)  # fmt: skip
    freeze.freeze(db_session=session, actor=ACTOR, reason=reason, now=ctx.now)
    _post(session, ctx, f":rewind: Policy {reason}. Learning is frozen until `remediate learning unfreeze`.")
    return restored


def mark_harmful(*, db_session: Session, request_id: str, actor: str, reason: str, now: datetime) -> None:
    """Record that a request's executed action did harm (audit event ``marked_harmful``; not committed)."""
    row = db_session.get(ApprovalRequest, request_id)
    if row is None:
        raise LoopError(f"no approval request {request_id!r}")
    append(db_session=db_session, actor=actor, event=HARMFUL_EVENT, decision="info", reason=reason,
           action=row.action, target=row.target, incident_id=row.incident_id, request_id=row.id, at=now)  # fmt: skip

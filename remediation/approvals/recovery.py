"""Recovery after a crash: requests left ``executing`` by a runner whose lease expired become ``unknown``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import ApprovalRequest, Execution
from remediation.approvals import states as st
from remediation.approvals._store import audit, disarm_canary, move
from remediation.approvals.context import Guard
from remediation.audit.service import lock_chain


def recover_interrupted(*, db_session: Session, guard: Guard) -> list[str]:
    """Mark ``executing`` requests whose lease expired (the runner died) as ``unknown``; return their ids.

    An execution whose lease is still live belongs to a running replica and is left alone; one without
    an execution row or a lease (older versions) counts as expired. Nothing is ever re-run.
    """
    lock_chain(db_session=db_session)
    now = guard.clock()
    live = sa.exists().where(
        Execution.request_id == ApprovalRequest.id,
        Execution.lease_expires_at.is_not(None),
        Execution.lease_expires_at > now,
    )
    rows = list(
        db_session.execute(
            sa.select(ApprovalRequest).where(ApprovalRequest.state == st.EXECUTING, ~live)
        ).scalars()
    )
    done = []
    for row in rows:
        taken = db_session.execute(
            sa.update(Execution)
            .where(
                Execution.request_id == row.id,
                sa.or_(Execution.lease_expires_at.is_(None), Execution.lease_expires_at <= now),
            )
            .values(state="unknown", finished_at=now)
            .execution_options(synchronize_session=False)
        )
        has_execution = db_session.execute(
            sa.select(sa.func.count()).select_from(Execution).where(Execution.request_id == row.id)
        ).scalar_one()
        if getattr(taken, "rowcount", 0) == 0 and has_execution:
            continue  # its owner renewed the lease since we looked: still alive
        move(db_session, row, st.UNKNOWN, now)
        disarm_canary(db_session, row, now)
        done.append(row.id)
        audit(
            db_session,
            row,
            actor="remediate",
            event="outcome",
            decision="info",
            reason="unknown: the run's lease expired while executing (its runner stopped); check the target by hand",
        )
    db_session.commit()
    return done

"""The review of a postmortem: reviewers, edits, comments, sign-off, publish; every change audited.

draft -> in_review (reviewers assigned) -> published (every assigned reviewer signed off the current
version, and the publisher holds a role of ``postmortems.publish_roles``). An edit in review clears the
sign-offs (they were given to other words); an edit after publishing opens the next version as a
draft, and the published one stays kept as it was. Each function takes the audit chain's lock first,
so steps on one postmortem never interleave; none commits (the caller does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import networkx as nx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import Postmortem
from incidents_db.postmortems import PostmortemComment, PostmortemVersion
from remediation.audit.service import append, lock_chain
from remediation.errors import PostmortemError, PostmortemNotAllowedError
from remediation.guardrails.models import RbacConfig
from remediation.guardrails.rbac import may_publish_postmortems, roles_of
from remediation.postmortem import service
from remediation.postmortem.report import BOTS

EDITABLE = ("summary", "root_cause", "contributing_factors", "action_items")
MAX_TEXT = 20_000  # characters of one edited field or comment
MAX_REVIEWERS = 10


def _row(db_session: Session, incident_id: str, now: datetime) -> Postmortem:
    lock_chain(db_session=db_session)
    return service.ensure_draft(db_session=db_session, incident_id=incident_id, now=now)


def _audit(
    db_session: Session, row: Postmortem, actor: str, step: str, reason: str, now: datetime, **params: Any
) -> None:
    append(
        db_session=db_session,
        actor=actor,
        event=f"postmortem_{step}",
        decision="allowed",
        reason=reason,
        incident_id=row.incident_id,
        params={"version": row.version, **params},
        at=now,
    )


def _need_role(config: RbacConfig, user: str, what: str) -> None:
    if not roles_of(config, user):
        raise PostmortemNotAllowedError(f"<@{user}> has no role in the RBAC config, so may not {what}")


def _reopen_if_published(row: Postmortem, now: datetime) -> bool:
    """Open the next version as a draft when the current one is published; return whether it did."""
    if row.status not in ("published", "approved"):
        return False
    row.version += 1
    row.status, row.signoffs, row.review_started_at, row.reminded_at = "draft", {}, None, None
    row.updated_at = now
    return True


def assign_reviewers(
    *,
    db_session: Session,
    config: RbacConfig,
    incident_id: str,
    actor: str,
    reviewers: Iterable[str],
    now: datetime,
) -> Postmortem:
    """Set the reviewers and put the postmortem in review (a published one opens its next version first)."""
    _need_role(config, actor, "assign postmortem reviewers")
    chosen = list(dict.fromkeys(r for r in reviewers if r))
    if not chosen or len(chosen) > MAX_REVIEWERS:
        raise PostmortemError(
            f"name 1 to {MAX_REVIEWERS} reviewers, e.g. `postmortem {incident_id} review @alice`"
        )
    row = _row(db_session, incident_id, now)
    _reopen_if_published(row, now)
    row.reviewers, row.status, row.updated_at = chosen, "in_review", now
    row.review_started_at, row.reminded_at = now, None
    row.signoffs = {u: v for u, v in (row.signoffs or {}).items() if u in chosen}
    _audit(db_session, row, actor, "review", f"reviewers: {', '.join(chosen)}", now, reviewers=chosen)
    db_session.flush()
    return row


def _clean_items(raw: Any) -> list[dict[str, str]]:
    items: list[dict[str, str]] = []
    for item in raw or []:
        if isinstance(item, Mapping) and str(item.get("text", "")).strip():
            items.append({k: str(item.get(k) or "")[:MAX_TEXT] for k in ("text", "owner", "due")})
    return items


def edit(
    *,
    db_session: Session,
    config: RbacConfig,
    incident_id: str,
    actor: str,
    changes: Mapping[str, Any],
    now: datetime,
) -> Postmortem:
    """Change the edited fields (summary, root cause, contributing factors, action items); audited."""
    _need_role(config, actor, "edit postmortems")
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise PostmortemError(f"cannot edit {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
    row = _row(db_session, incident_id, now)
    fields = dict(row.fields or {})
    for key, value in changes.items():
        if key == "action_items":
            fields[key] = _clean_items(value)
        elif key == "contributing_factors":
            fields[key] = [str(v)[:MAX_TEXT] for v in value or [] if str(v).strip()]
        else:
            fields[key] = str(value or "")[:MAX_TEXT]
    if fields == dict(row.fields or {}):
        return row
    reopened = _reopen_if_published(row, now)
    if row.status == "in_review" and row.signoffs:
        row.signoffs = {}  # they signed other words
    row.fields, row.updated_at = fields, now
    note = f"edited {', '.join(sorted(changes))}" + (f"; version {row.version} opened" if reopened else "")
    _audit(db_session, row, actor, "edit", note, now, fields=sorted(changes))
    db_session.flush()
    return row


def comment(
    *, db_session: Session, incident_id: str, actor: str, text: str, now: datetime
) -> PostmortemComment:
    """Keep a comment on the current version (audited); the bot posts it in the incident's thread."""
    clean = text.strip()
    if not clean:
        raise PostmortemError(
            f"write the comment after the word, e.g. `postmortem {incident_id} comment looks right`"
        )
    row = _row(db_session, incident_id, now)
    note = PostmortemComment(
        incident_id=row.incident_id, version=row.version, author=actor, at=now, text=clean[:MAX_TEXT]
    )
    db_session.add(note)
    _audit(db_session, row, actor, "comment", clean[:200], now)
    db_session.flush()
    return note


def comments(*, db_session: Session, incident_id: str) -> list[PostmortemComment]:
    """Return the comments on a postmortem, oldest first."""
    query = sa.select(PostmortemComment).where(PostmortemComment.incident_id == incident_id)
    return list(db_session.execute(query.order_by(PostmortemComment.at, PostmortemComment.id)).scalars())


def sign_off(*, db_session: Session, incident_id: str, actor: str, now: datetime) -> Postmortem:
    """Record an assigned reviewer's sign-off of the current version (in review only); audited."""
    row = _row(db_session, incident_id, now)
    if row.status != "in_review":
        raise PostmortemError(
            f"the postmortem of {row.incident_id} is {row.status}, not in review; nothing to sign off"
        )
    if actor not in (row.reviewers or []):
        raise PostmortemNotAllowedError(
            f"only its reviewers sign off this postmortem: {', '.join(row.reviewers or [])}"
        )
    row.signoffs = {**(row.signoffs or {}), actor: row.version}
    row.updated_at = now
    _audit(db_session, row, actor, "signoff", f"signed off version {row.version}", now)
    db_session.flush()
    return row


def publish(
    *,
    db_session: Session,
    config: RbacConfig,
    incident_id: str,
    actor: str,
    now: datetime,
    graph: nx.DiGraph | None = None,
    bots: Iterable[str] = BOTS,
) -> Postmortem:
    """Publish the current version: freeze its report as JSON (kept), status published; audited."""
    row = _row(db_session, incident_id, now)
    if row.status != "in_review":
        raise PostmortemError(
            f"the postmortem of {row.incident_id} is {row.status}; assign reviewers to put it in review first"
        )
    if not may_publish_postmortems(config, actor):
        roles = ", ".join(config.postmortems.publish_roles) or "any role"
        raise PostmortemNotAllowedError(f"publishing a postmortem needs the role {roles} in the RBAC config")
    missing = [u for u in row.reviewers or [] if u not in service.signed_off(row)]
    if missing:
        raise PostmortemNotAllowedError(
            f"waiting for the sign-off of {', '.join(f'<@{u}>' for u in missing)}"
        )
    row.status, row.published_at, row.updated_at = "published", now, now
    db_session.flush()
    frozen = service.report(db_session=db_session, incident_id=row.incident_id, graph=graph, bots=bots)
    db_session.add(
        PostmortemVersion(
            incident_id=row.incident_id,
            version=row.version,
            published_at=now,
            published_by=actor,
            report=frozen,
        )
    )
    _audit(db_session, row, actor, "publish", f"published version {row.version}", now)
    db_session.flush()
    return row


def due_reminders(*, db_session: Session, after_s: float, now: datetime) -> list[Postmortem]:
    """Return postmortems in review longer than ``after_s`` and not reminded within ``after_s``; marks them."""
    lock_chain(db_session=db_session)
    cutoff = now - timedelta(seconds=after_s)
    rows = db_session.execute(
        sa.select(Postmortem)
        .where(Postmortem.status == "in_review", Postmortem.review_started_at <= cutoff)
        .where(sa.or_(Postmortem.reminded_at.is_(None), Postmortem.reminded_at <= cutoff))
        .order_by(Postmortem.review_started_at, Postmortem.id)
    ).scalars()
    due = list(rows)
    for row in due:
        row.reminded_at = now
    db_session.flush()
    return due

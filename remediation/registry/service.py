"""The policy life cycle in ``policy_versions``: register, list, show, shadow, promote, roll back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import PolicyVersion
from remediation.errors import RegistryError


def register(*, db_session: Session, version: str, path: str, sha256: str, parent: str | None,
             metrics: dict[str, Any], config: dict[str, Any]) -> PolicyVersion:  # fmt: skip
    """Record a new candidate version."""
    if db_session.get(PolicyVersion, version) is not None:
        raise RegistryError(f"policy version {version} is already registered")
    row = PolicyVersion(id=version, path=path, sha256=sha256, parent=parent, status="candidate",
                        metrics=metrics, config=config, created_at=datetime.now(UTC))  # fmt: skip
    db_session.add(row)
    db_session.flush()
    return row


def list_versions(*, db_session: Session) -> list[PolicyVersion]:
    """Return every version, newest first."""
    return list(
        db_session.scalars(
            sa.select(PolicyVersion).order_by(PolicyVersion.created_at.desc(), PolicyVersion.id)
        )
    )


def get_version(*, db_session: Session, version: str) -> PolicyVersion:
    """Return one version or raise RegistryError naming the known ones."""
    row = db_session.get(PolicyVersion, version)
    if row is None:
        known = (
            ", ".join(v.id for v in list_versions(db_session=db_session)[:5])
            or "none yet (run remediate train)"
        )
        raise RegistryError(f"no policy version {version!r}; latest: {known}")
    return row


def promoted(*, db_session: Session) -> PolicyVersion | None:
    """Return the promoted version, if any."""
    return db_session.scalars(sa.select(PolicyVersion).where(PolicyVersion.status == "promoted")).first()


def set_shadow(*, db_session: Session, version: str) -> PolicyVersion:
    """Run a version in shadow (it ranks next to the promoted one; its suggestions are not shown)."""
    row = get_version(db_session=db_session, version=version)
    if row.status == "promoted":
        raise RegistryError(f"{version} is promoted; roll back first to shadow it")
    for other in db_session.scalars(sa.select(PolicyVersion).where(PolicyVersion.status == "shadow")):
        other.status = "candidate"
    row.status = "shadow"
    return row


def promote(*, db_session: Session, version: str) -> PolicyVersion:
    """Make ``version`` the promoted one; the previous promoted version is retired."""
    row = get_version(db_session=db_session, version=version)
    current = promoted(db_session=db_session)
    if current is not None and current.id != row.id:
        current.status = "retired"
    row.status = "promoted"
    row.promoted_at = datetime.now(UTC)
    return row


def rollback(*, db_session: Session) -> PolicyVersion:
    """Retire the promoted version and promote the one promoted before it (or its parent)."""
    current = promoted(db_session=db_session)
    if current is None:
        raise RegistryError("no promoted policy to roll back")
    earlier = db_session.scalars(
        sa.select(PolicyVersion)
        .where(PolicyVersion.promoted_at.is_not(None), PolicyVersion.id != current.id)
        .order_by(PolicyVersion.promoted_at.desc())
    ).first()
    if earlier is None and current.parent:
        earlier = db_session.get(PolicyVersion, current.parent)
    if earlier is None:
        raise RegistryError(f"{current.id} has no earlier promoted version or parent to roll back to")
    current.status = "retired"
    earlier.status = "promoted"
    earlier.promoted_at = datetime.now(UTC)
    return earlier


def version_row(version: PolicyVersion) -> dict[str, Any]:
    """Return a version as JSON-ready values (what `remediate policy` prints), without its training config."""
    return {
        "version": version.id,
        "status": version.status,
        "parent": version.parent,
        "sha256": version.sha256,
        "path": version.path,
        "created_at": version.created_at.isoformat(),
        "promoted_at": version.promoted_at.isoformat() if version.promoted_at else None,
        "metrics": version.metrics,
    }

"""Slack installations on our own store: slack_sdk's SQLAlchemy stores on our engine, incidents' workspaces.

The install flow (docs/slack.md, Install anywhere) keeps each workspace's bot token in slack_sdk's
`SQLAlchemyInstallationStore` and each install's state in its `SQLAlchemyOAuthStateStore`, both on the
engine of the incident store, in the tables migration 0015 creates (never ``create_tables()``); their
definitions are the classes' own, registered on our metadata below.
"""

from __future__ import annotations

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.orm import Session

from incidents_db.incidents import find
from incidents_db.models import ApprovalRequest, Base, Incident

STATE_TTL_S = 600  # an install started must come back within ten minutes, as Bolt's default
_STORE, _STATES = SQLAlchemyInstallationStore, SQLAlchemyOAuthStateStore
# The classes' own table definitions, on our metadata: migration 0015 creates exactly these, and
# tests/incidents_db/test_db.py (migrations match models) fails if a slack_sdk upgrade changes them.
INSTALLATIONS = _STORE.build_installations_table(Base.metadata, _STORE.default_installations_table_name)
BOTS = _STORE.build_bots_table(Base.metadata, _STORE.default_bots_table_name)
STATES = _STATES.build_oauth_states_table(Base.metadata, _STATES.default_table_name)


def installation_store(engine: sa.Engine, *, client_id: str) -> SQLAlchemyInstallationStore:
    """Return the installation store of this app (its client id) on the store's engine."""
    return SQLAlchemyInstallationStore(client_id=client_id, engine=engine)


def state_store(engine: sa.Engine, *, expiration_s: int = STATE_TTL_S) -> SQLAlchemyOAuthStateStore:
    """Return the OAuth state store (one-use states, expiring) on the store's engine."""
    return SQLAlchemyOAuthStateStore(expiration_seconds=expiration_s, engine=engine)


def workspace_of(*, db_session: Session, incident_id: str) -> tuple[str | None, str | None]:
    """Return (the incident's id as stored, its workspace: None for home); (None, None) when unknown."""
    incident = find(db_session=db_session, incident_id=incident_id) or find(
        db_session=db_session, incident_id=incident_id.upper()
    )
    return (incident.id, incident.slack_workspace) if incident is not None else (None, None)


def request_workspace(*, db_session: Session, request_id: str) -> tuple[str | None, str | None]:
    """Return (incident id, its workspace) of an approval request; (None, None) when it names none."""
    incident_id = db_session.execute(
        sa.select(ApprovalRequest.incident_id).where(ApprovalRequest.id == request_id)
    ).scalar_one_or_none()
    return (
        (None, None) if incident_id is None else workspace_of(db_session=db_session, incident_id=incident_id)
    )


def set_workspace(*, db_session: Session, incident_id: str, workspace: str | None) -> None:
    """Record which workspace an incident belongs to (flushed; the caller commits)."""
    db_session.execute(
        sa.update(Incident).where(Incident.id == incident_id).values(slack_workspace=workspace)
    )

"""What the gate holds a candidate against: the promoted version, else the runbook."""

from __future__ import annotations

from pathlib import Path

from incidents_db.db import session_scope
from remediation.registry import service
from remediation.registry.workflow import promoted_artifact
from tests.remediation.conftest import Store


def test_without_a_loadable_promoted_version_the_runbook_is_production(
    sqlite_store: Store, tmp_path: Path
) -> None:
    artifact, note = promoted_artifact(engine=sqlite_store.engine)
    assert artifact is None and "no promoted version" in note
    with session_scope(sqlite_store.factory) as session:
        service.register(db_session=session, version="policy-gone", path=str(tmp_path / "gone"), sha256="0" * 64,
                         parent=None, metrics={}, config={})  # fmt: skip
        service.promote(db_session=session, version="policy-gone")
    artifact, note = promoted_artifact(engine=sqlite_store.engine)
    assert artifact is None
    assert "policy-gone cannot load" in note and "no policy artifact" in note and "runbook serves" in note

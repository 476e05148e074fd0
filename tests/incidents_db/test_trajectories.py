"""Trajectories of stored incidents on SQLite and PostgreSQL: steps, impact, rewards, unmapped actions."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from incidents_db import db, importer, mining, trajectories
from tests.incidents_db.factories import incident, line, with_event


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    store = db.open_store(migrated_db_url)
    yield store
    store.dispose()


def load(engine: sa.Engine, records: list[dict]) -> None:
    text = "".join(line(r) + "\n" for r in records)
    report = importer.import_lines(engine=engine, lines=io.BytesIO(text.encode()))
    assert report.refused == []


def test_steps_and_rewards_of_a_known_incident(engine: sa.Engine) -> None:
    load(engine, [incident("INC-1")])
    [(trajectory, _)] = list(mining.iter_trajectories(engine=engine))
    first, second = trajectory.steps
    # restart at 10:20 (no effect), rollback at 10:31 (fixed), alert resolved 10:33, resolved 10:41.
    assert (first.action, first.outcome, first.dt) == ("restart_service", "no_effect", 660.0)
    assert first.alerts == (("checkoutservice", "HighErrorRate"),)
    assert first.metrics == {"checkoutservice": {"error_rate": 0.12, "latency_p99_ms": 850, "cpu": 0.41}}
    assert first.impact_minutes == pytest.approx(11.0)
    # sev2 = 2.0 per impact minute; wasted action penalty 5.
    assert first.reward == pytest.approx(-2.0 * 11 - 5.0)
    assert not first.done
    assert second.dt == 600.0 and second.done
    assert second.impact_minutes == pytest.approx(2.0)  # impact ends when the alert resolves at 10:33
    assert second.reward == pytest.approx(-2.0 * 2 + 10.0)


def test_unmapped_actions_and_incidents_without_alerts(engine: sa.Engine) -> None:
    record = with_event(incident("INC-U", severity="sev1"), 4, action="kubectl_magic")
    quiet = incident("INC-Q", severity="sev4")
    quiet["events"] = [e for e in quiet["events"] if e["type"] != "alert"]
    load(engine, [record, quiet])
    found = {t.incident_id: t for t, _ in mining.iter_trajectories(engine=engine)}
    assert found["INC-U"].steps[0].action == trajectories.UNMAPPED
    assert found["INC-U"].steps[0].action_name == "kubectl_magic"
    # No alerts: the whole time from the step until resolution counts as impact.
    assert found["INC-Q"].steps[1].impact_minutes == pytest.approx(10.0)

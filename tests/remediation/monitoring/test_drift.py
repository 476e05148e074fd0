"""The population stability index per feature group, and the training reference from mined history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from incidents_db.db import open_store
from incidents_db.importer import import_lines
from incidents_db.synthetic import generate_incidents
from remediation.monitoring.drift import GROUPS, group_psi, psi, reference_rows, shares
from sim.observation import FEATURES
from sim.resolve import resolve_topology


def test_the_same_distribution_does_not_drift_and_a_shifted_one_does() -> None:
    rng = np.random.default_rng(7)
    train = rng.beta(2, 8, size=(4000, len(FEATURES)))
    same = rng.beta(2, 8, size=(4000, len(FEATURES)))
    shifted = same.copy()
    shifted[:, GROUPS["metrics"]] = rng.beta(8, 2, size=(4000, len(GROUPS["metrics"])))
    assert max(group_psi(train, same).values()) < 0.05
    drift = group_psi(train, shifted)
    assert drift["metrics"] > 0.25 and drift["alerts"] < 0.05
    assert set(drift) == set(GROUPS)
    # an empty bin on one side stays finite
    assert np.isfinite(psi(shares(np.zeros((10, 2))), shares(np.ones((10, 2))))).all()


def test_the_reference_is_the_mined_history_encoded_as_training_encodes_it(sqlite_url: str) -> None:
    engine = open_store(sqlite_url)
    try:
        records = generate_incidents(30, seed=5, open_fraction=0.0)
        import_lines(engine=engine, lines=[json.dumps(r).encode() + b"\n" for r in records])
        topology = resolve_topology("online-boutique")
        rows, steps = reference_rows(engine=engine, topology=topology, before=None)
        assert steps > 0 and rows.shape[1] == len(FEATURES) and rows.shape[0] >= steps
        assert rows.min() >= 0.0 and rows.max() <= 1.0
        assert rows[:, GROUPS["alerts"]].max() == 1.0  # steps were taken while alerts fired
        with engine.connect() as conn:  # before the oldest incident resolved: nothing is training data
            oldest = conn.execute(sa.text("SELECT min(opened_at) FROM incidents")).scalar_one()
        first = datetime.fromisoformat(str(oldest)).replace(tzinfo=UTC)
        assert reference_rows(engine=engine, topology=topology, before=first)[1] == 0
    finally:
        engine.dispose()

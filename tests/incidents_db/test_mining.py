"""Trajectory mining on SQLite and PostgreSQL: watermark, incremental and full runs, dataset layout, workers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from incidents_db import db, importer, mining
from incidents_db.dataset import load_dataset
from incidents_db.synthetic import generate_incidents
from playbooks.catalog import builtin_catalog
from tests.incidents_db.factories import line


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    store = db.open_store(migrated_db_url)
    yield store
    store.dispose()


def load(engine: sa.Engine, records: list[dict]) -> None:
    text = "".join(line(r) + "\n" for r in records)
    report = importer.import_lines(engine=engine, lines=io.BytesIO(text.encode()))
    assert report.refused == []


def test_mine_writes_dataset_and_is_incremental(engine: sa.Engine, tmp_path: Path) -> None:
    records = list(generate_incidents(60, seed=9, open_fraction=0.1))
    load(engine, records)
    resolved = sum(1 for r in records if r.get("resolved_at"))
    out = tmp_path / "mined"
    summary = mining.mine(engine=engine, out_dir=out)
    assert summary.incidents == resolved
    data = load_dataset(Path(summary.out))
    steps = summary.steps
    assert data["traj_step_offsets"][-1] == steps == data["step_reward"].shape[0]
    assert data["traj_incident"].shape == (summary.trajectories,)
    assert data["step_alert_offsets"][-1] == data["alert_name"].shape[0]
    assert data["step_metric_offsets"][-1] == data["metric_value"].shape[0]
    assert int((data["step_action"] == -1).sum()) == summary.unmapped_actions
    catalog = builtin_catalog()
    mapped = data["step_action"] >= 0
    names = data["action_names"][data["step_action_name"][mapped]]
    assert list(names) == [catalog.ids[i] for i in data["step_action"][mapped]]
    assert np.all(data["step_done"][data["traj_step_offsets"][1:] - 1])
    np.testing.assert_allclose(
        np.add.reduceat(data["step_reward"], data["traj_step_offsets"][:-1]), data["traj_return"], rtol=1e-5
    )

    again = mining.mine(engine=engine, out_dir=out)
    assert (again.incidents, again.out) == (0, str(out))
    load(engine, list(generate_incidents(10, seed=10, first_number=500, open_fraction=0.0)))
    later = mining.mine(engine=engine, out_dir=out)
    assert later.incidents == 10
    assert set(load_dataset(Path(later.out))["traj_incident"]) <= {f"INC-{n}" for n in range(500, 510)}
    assert len(list(out.glob("*.npz"))) == 2

    full = mining.mine(engine=engine, out_dir=out, full=True)
    assert full.incidents == resolved + 10
    assert [p.name for p in out.glob("*.npz")] == [Path(full.out).name]


def test_mining_pages_do_not_change_the_result(engine: sa.Engine) -> None:
    load(engine, list(generate_incidents(45, seed=4)))
    small = [t for t, _ in mining.iter_trajectories(engine=engine, page_size=7)]
    large = [t for t, _ in mining.iter_trajectories(engine=engine, page_size=1000)]
    assert small == large and len(small) > 0


def test_worker_processes_mine_the_same_dataset(engine: sa.Engine, tmp_path: Path) -> None:
    load(engine, list(generate_incidents(120, seed=8)))
    one = mining.mine(engine=engine, out_dir=tmp_path / "one", full=True, workers=0)
    two = mining.mine(
        engine=engine, out_dir=tmp_path / "two", full=True, workers=2, parallel_after=10, page_size=9,
        _wait_for_workers=True,
    )  # fmt: skip
    assert (one.incidents, one.steps) == (two.incidents, two.steps)
    first, second = load_dataset(Path(one.out)), load_dataset(Path(two.out))
    assert first.keys() == second.keys()
    for key in first.keys() - {"meta"}:  # meta holds the creation time
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert mining.mine(engine=engine, out_dir=tmp_path / "two", workers=2, parallel_after=10).incidents == 0

"""The loop's jobs on a real SQLite store: recorded runs, a tiny real retrain, evaluation, the promote gate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from incidents_db import jobruns
from incidents_db.db import make_sessionmaker, open_store, session_scope
from incidents_db.importer import import_lines
from remediation.loop.config import JobContext, LoopConfig
from remediation.loop.dataset import full_dataset
from remediation.loop.runner import run_job
from remediation.registry import service


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[sa.Engine, LoopConfig]]:
    url = f"sqlite:///{tmp_path / 'loop.sqlite'}"
    engine = open_store(url)
    config = LoopConfig(data_dir=tmp_path, database_url=url, retrain_minutes=0.5, retrain_iterations=1,
                        quick=True, evaluate_episodes=4, variations=1)  # fmt: skip
    yield engine, config
    engine.dispose()


def statuses(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    with session_scope(make_sessionmaker(engine)) as session:
        return {v.id: (v.status, v.sha256) for v in service.list_versions(db_session=session)}


def test_runs_are_recorded_with_their_outcome(store: tuple[sa.Engine, LoopConfig]) -> None:
    engine, config = store
    assert run_job(engine=engine, name="mine", config=config, replica="r1").outcome == "succeeded"
    assert run_job(engine=engine, name="evaluate", config=config, replica="r1").outcome == "skipped"
    off = run_job(engine=engine, name="promote", config=config, replica="r1")
    assert off.outcome == "skipped" and "automatic promotion is off" in off.detail["reason"]
    report = run_job(engine=engine, name="report", config=config, replica="r1", trigger="schedule")
    assert Path(report.detail["report"]).is_file()
    with session_scope(make_sessionmaker(engine)) as session:
        last = jobruns.last_runs(db_session=session)
        assert {k: v.outcome for k, v in last.items()} == {
            "mine": "succeeded", "evaluate": "skipped", "promote": "skipped", "report": "succeeded"
        }  # fmt: skip
        assert last["report"].trigger == "schedule" and last["report"].finished_at is not None


def test_retrain_registers_a_candidate_evaluate_judges_it_promote_goes_through_the_gate(
    store: tuple[sa.Engine, LoopConfig],
) -> None:
    engine, config = store
    trained = run_job(engine=engine, name="retrain", config=config, replica="r1")
    assert trained.outcome == "succeeded", trained.detail
    version = trained.detail["version"]
    assert statuses(engine)[version][0] == "candidate"
    judged = run_job(engine=engine, name="evaluate", config=config, replica="r1")
    assert judged.outcome == "succeeded" and judged.detail["version"] == version
    assert set(judged.detail["graphs"]) == {"online-boutique", "online-boutique-var1"}
    assert judged.detail["production"] == "runbook"
    assert "skipped" in judged.detail["off_policy"]  # no resolved incidents in this store
    # one iteration of training does not beat the runbook: evaluation says so, promote promotes nothing
    assert judged.detail["passed"] is False and judged.detail["reasons"]
    on = replace(config, promote=True)
    assert run_job(engine=engine, name="promote", config=on, replica="r1").outcome == "skipped"
    assert statuses(engine)[version][0] == "candidate"


def test_a_job_failing_midway_leaves_the_registry_unchanged(
    store: tuple[sa.Engine, LoopConfig], tmp_path: Path
) -> None:
    engine, config = store
    version = run_job(engine=engine, name="retrain", config=config, replica="r1").detail["version"]
    before = statuses(engine)
    # retraining fails after mining (its guardrails file is gone): nothing is registered
    broken = replace(config, rbac_config=tmp_path / "missing-rbac.yaml")
    failed = run_job(engine=engine, name="retrain", config=broken, replica="r1")
    assert failed.outcome == "failed" and "missing-rbac.yaml" in failed.detail["error"]
    assert statuses(engine) == before
    # promote fails midway on a corrupt artifact (SHA-256 check) after finding a passed evaluation
    with session_scope(make_sessionmaker(engine)) as session:
        run_id = jobruns.start_run(db_session=session, job="evaluate", trigger="manual", replica="r1",
                                   now=datetime.now(UTC))  # fmt: skip
    with session_scope(make_sessionmaker(engine)) as session:
        row = session.get(jobruns.JobRun, run_id)
        assert row is not None
        jobruns.finish_run(db_session=session, run_id=run_id, outcome="succeeded",
                           detail={"version": version, "passed": True}, now=row.started_at)  # fmt: skip
    weights = tmp_path / "policies" / version / "policy.pt"
    weights.write_bytes(weights.read_bytes() + b"tampered")
    promoted = run_job(engine=engine, name="promote", config=replace(config, promote=True), replica="r1")
    assert promoted.outcome == "failed" and "ArtifactError" in promoted.detail["error"]
    assert statuses(engine) == before
    with session_scope(make_sessionmaker(engine)) as session:
        assert jobruns.runs(db_session=session, job="promote")[0].outcome == "failed"


def test_retraining_reads_the_whole_store_without_moving_the_mine_watermark(
    store: tuple[sa.Engine, LoopConfig], tmp_path: Path
) -> None:
    engine, config = store
    sample = Path(__file__).parents[3] / "incidents_db" / "samples" / "sample_history.jsonl"
    with sample.open("rb") as lines:
        assert import_lines(engine=engine, lines=lines).imported == 30
    context = JobContext(engine=engine, config=config, now=datetime.now(UTC))
    dataset = full_dataset(context, tmp_path / "scratch")
    assert dataset is not None and dataset.is_file()
    mined = run_job(engine=engine, name="mine", config=config, replica="r1")
    assert mined.detail["incidents"] == 30  # the mine job still sees every incident as new
    assert full_dataset(context, tmp_path / "scratch2") is not None  # and the whole store again, after it
    assert run_job(engine=engine, name="mine", config=config, replica="r1").detail["incidents"] == 0

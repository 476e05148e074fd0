"""Run one loop job and record the run in ``job_runs``: started, then succeeded, skipped or failed.

A job writes the registry only in its last step, in one transaction; a job that raises before that
leaves the registry as it was, and its run is recorded ``failed`` with the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from incidents_db import jobruns
from incidents_db.db import make_sessionmaker, session_scope
from remediation.errors import LoopError
from remediation.loop import jobs, watch
from remediation.loop.config import JOB_NAMES, JobContext, JobResult, LoopConfig

log = logging.getLogger("remediate.loop")
Job = Callable[[JobContext], JobResult]

JOBS: dict[str, Job] = {
    "mine": jobs.mine,
    "retrain": jobs.retrain,
    "evaluate": jobs.evaluate,
    "promote": jobs.promote,
    "report": jobs.report,
    "watch": watch.watch,
}
assert tuple(JOBS) == JOB_NAMES


@dataclass(frozen=True)
class RunRecord:
    """One recorded run, as `remediate jobs run` prints it."""

    run_id: int
    job: str
    outcome: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """Return the run as JSON-ready values."""
        return {"run": self.run_id, "job": self.job, "outcome": self.outcome, "detail": self.detail}


def run_job(*, engine: sa.Engine, name: str, config: LoopConfig, replica: str, trigger: str = "manual",
            clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RunRecord:  # fmt: skip
    """Run the job ``name`` now, record the run and return it (a failure is recorded, not raised)."""
    job = JOBS.get(name)
    if job is None:
        raise LoopError(f"no job {name!r}; jobs: {', '.join(JOB_NAMES)}")
    factory = make_sessionmaker(engine)
    started = clock()
    with session_scope(factory) as session:
        run_id = jobruns.start_run(
            db_session=session, job=name, trigger=trigger, replica=replica, now=started
        )
    context = JobContext(engine=engine, config=config, now=started, run_id=run_id)
    try:
        result = job(context)
    except Exception as exc:  # recorded as the run's outcome; the scheduler keeps going
        log.exception("job %s failed", name)
        result = JobResult("failed", {"error": f"{type(exc).__name__}: {exc}"[:2000]})
    with session_scope(factory) as session:
        jobruns.finish_run(db_session=session, run_id=run_id, outcome=result.outcome,
                           detail=_jsonable(result.detail), now=clock())  # fmt: skip
    return RunRecord(run_id, name, result.outcome, _jsonable(result.detail))


def _jsonable(value: Any) -> Any:
    """Return ``value`` with every leaf a JSON value (numpy numbers and paths become plain ones)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)

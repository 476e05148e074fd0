"""What the demo prepares before it serves: simulated history to import, and optionally a quick policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from incidents_db.db import make_sessionmaker, session_scope
from sim.history import generate_history, write_history
from sim.resolve import resolve_topology

if TYPE_CHECKING:
    from remediation.learning.ranking import LearnedPolicy

Progress = Callable[[str, int, int, dict[str, float]], None]


def write_sim_history(
    out: Path, *, topology: str, incidents: int, seed: int, on_incident: Callable[[], None] | None = None
) -> int:
    """Write ``incidents`` simulated incidents (what `remediate sim history` writes) to ``out``."""
    topo = resolve_topology(topology)

    def records() -> Iterator[dict[str, Any]]:
        for record in generate_history(topo, incidents=incidents, seed=seed):
            if on_incident is not None:
                on_incident()
            yield record

    return write_history(records(), out)


def train_quick_policy(
    *,
    engine: Engine,
    data_dir: Path,
    store_url: str,
    minutes: float,
    seed: int,
    progress: Progress | None = None,
) -> LearnedPolicy:
    """Train on the store's history for ``minutes``, promote the result (no gate: a demo) and load it."""
    # torch loads only when a policy is trained: the runbook demo starts without it
    from remediation.learning.train import TrainArgs
    from remediation.registry import service as registry
    from remediation.registry.workflow import load_policy, train_and_register

    args = TrainArgs(seed=seed, minutes=minutes, run_root=str(data_dir / "runs"), name="demo")
    summary = train_and_register(
        engine=engine,
        data_dir=data_dir,
        args=args,
        history_file=None,
        from_store_url=store_url,
        progress=progress,
    )
    with session_scope(make_sessionmaker(engine)) as session:
        registry.promote(db_session=session, version=str(summary["version"]))
    return load_policy(engine=engine, ref=str(summary["version"]))

"""The team's whole history as one mined dataset, for retraining and off-policy evaluation."""

from __future__ import annotations

from pathlib import Path

from incidents_db import mining
from incidents_db.db import make_sessionmaker, session_scope
from incidents_db.mining_reads import WATERMARK_KEY, read_watermark, write_watermark
from incidents_db.models import MiningState
from remediation.loop.config import JobContext


def full_dataset(ctx: JobContext, scratch: Path) -> Path | None:
    """Mine every resolved incident into ``scratch`` without moving the mine job's watermark; None if none."""
    with ctx.engine.connect() as conn:
        before = read_watermark(connection=conn)
    try:
        summary = mining.mine(engine=ctx.engine, out_dir=scratch, full=True, workers=0)
    finally:
        with session_scope(make_sessionmaker(ctx.engine)) as session:
            if before is None:
                row = session.get(MiningState, WATERMARK_KEY)
                if row is not None:
                    session.delete(row)
        if before is not None:
            with ctx.engine.begin() as conn:
                write_watermark(connection=conn, watermark=before)
    return Path(summary.out) if summary.trajectories else None

"""The audit log's head kept outside the database: an append-only JSON Lines file, and the check before publishing.

Each publication is one line ``{"seq": N, "hash": "...", "at": "...", "entries": N}``, appended with
``O_APPEND`` in one write and fsync'd; a line is never rewritten. A new head is published only when it
differs from the last one and the chain still runs unchanged from the last one to it, so a log cut and
re-headed by someone who can write the database is refused instead of being blessed by a publication.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import AuditEntry
from remediation.audit.service import Checkpoint, Verdict, verify, verify_since
from remediation.errors import CheckpointError

_TAIL_BLOCK = 4096


@dataclass(frozen=True)
class Publication:
    """One published head: the newest entry's seq and hash, when it was published, how many entries."""

    seq: int
    hash: str
    at: str
    entries: int

    @property
    def checkpoint(self) -> Checkpoint:
        """Return the head as a checkpoint `verify` checks the log against."""
        return Checkpoint(self.hash, self.seq)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON line's fields in their published order."""
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "entries": self.entries}


def _parse_line(line: str, where: str) -> Publication:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{where}: not a JSON line ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: expected an object with seq, hash, at and entries")
    seq, digest = raw.get("seq"), raw.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str):
        raise CheckpointError(f"{where}: expected a positive integer seq and a hash string")
    checkpoint = Checkpoint.parse(f"{seq}:{digest}")  # checks the hash's form
    entries = raw.get("entries", seq)
    return Publication(
        seq=seq,
        hash=checkpoint.hash,
        at=str(raw.get("at", "")),
        entries=entries if isinstance(entries, int) else seq,
    )


def read_last(path: Path) -> Publication | None:
    """Return the newest publication in the file (its last non-empty line); None if it is missing or empty.

    Only the end of the file is read, however long it has grown.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            tail = b""
            while end > 0:
                start = max(0, end - _TAIL_BLOCK)
                handle.seek(start)
                tail = handle.read(end - start) + tail
                end = start
                if tail.strip(b"\n").count(b"\n") >= 1:
                    break
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"head file {path}: cannot read it ({exc.strerror or exc})") from None
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        text = lines[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"head file {path}: its last line is not UTF-8 text") from None
    return _parse_line(text, f"head file {path}, last line")


def append(path: Path, publication: Publication) -> None:
    """Append one publication as a JSON line: ``O_APPEND``, one write, fsync (and the folder's on creation)."""
    line = json.dumps(publication.as_dict(), separators=(",", ":")) + "\n"
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            # a line cut short by a crash gets ended first, so the new line is whole and last
            with path.open("rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def check_head(
    *, db_session: Session, since: Checkpoint | None, now: datetime | None = None
) -> tuple[Verdict, Publication | None]:
    """Verify the chain (from ``since`` on when given, else whole) and return the head to publish.

    The publication is None when the check failed or the log is still empty.
    """
    verdict = (
        verify_since(db_session=db_session, checkpoint=since)
        if since is not None and since.seq is not None
        else verify(db_session=db_session)
    )
    if not verdict.ok or verdict.head_seq is None or verdict.head_hash is None:
        return verdict, None
    # the same snapshot as the walk (verify opened it), so the count matches the head just checked
    entries = int(db_session.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar_one())
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return verdict, Publication(seq=verdict.head_seq, hash=verdict.head_hash, at=at, entries=entries)

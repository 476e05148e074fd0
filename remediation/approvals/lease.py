"""Execution leases: who runs an execution, until when, and the heartbeat that keeps the claim alive.

A replica that claims a request writes its owner id and an expiry into the execution row, and renews
the expiry from a heartbeat thread while the executor runs. Recovery (`recover_interrupted`) only takes
executions whose lease has expired, so a second replica starting up never marks a live run ``unknown``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

log = logging.getLogger("remediate.approvals")

DEFAULT_LEASE_S = 60.0


def replica_id() -> str:
    """Return an owner id unique to this process: host, pid and a random tail (fits executions.lease_owner)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """An execution's lease: its owner, how long a claim holds without renewal, and how often it is renewed.

    Attributes:
        owner: who runs the execution (a replica id).
        seconds: how long the claim holds after each renewal; recovery takes it once this passed.
        renew_every_s: heartbeat interval; a third of ``seconds`` when None (two beats may be missed).
    """

    owner: str
    seconds: float = DEFAULT_LEASE_S
    renew_every_s: float | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"a lease must last longer than 0 s, got {self.seconds}")
        if self.renew_every_s is not None and not 0 < self.renew_every_s < self.seconds:
            raise ValueError(
                f"the heartbeat ({self.renew_every_s} s) must be above 0 and shorter than the lease ({self.seconds} s)"
            )

    @property
    def every_s(self) -> float:
        """Return the heartbeat interval in seconds."""
        return self.renew_every_s if self.renew_every_s is not None else self.seconds / 3


class Heartbeat:
    """Calls ``renew`` every ``every_s`` seconds on its own thread while the `with` block runs.

    ``renew`` returns False once the lease is lost (another replica recovered the execution); the
    heartbeat then stops, and the result, when it comes, is recorded as late.
    """

    def __init__(self, renew: Callable[[], bool], every_s: float, *, name: str = "lease") -> None:
        self._renew = renew
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"remediate-heartbeat-{name}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                if not self._renew():
                    log.warning(
                        "lost the execution lease (%s); its result will be recorded as late",
                        self._thread.name,
                    )
                    return
            except Exception:  # a database hiccup: try again at the next beat, the lease has slack
                log.exception("renewing an execution lease failed")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

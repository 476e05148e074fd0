"""The sandbox's clock: wall-clock time that tests move forward instead of sleeping."""

from __future__ import annotations

import time


class SandboxClock:
    """Wall-clock time that tests can move forward (`advance`) instead of sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        """Return seconds since the epoch, shifted by every `advance` so far."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward (trigger and response_url expiry, rate-limit refill)."""
        self._offset += max(0.0, seconds)

"""Errors of notification delivery (never shown to a person)."""

from __future__ import annotations


class Retry(Exception):
    """A delivery that did not happen now; how to try again (caught by the outbox worker, never shown)."""

    def __init__(
        self,
        delay_s: float,
        error: str,
        *,
        fatal: bool = False,
        counted: bool = True,
        uncertain: bool = False,
        slack_error: str = "",
    ) -> None:
        super().__init__(error)
        self.delay_s, self.error, self.fatal, self.counted = delay_s, error, fatal, counted
        self.uncertain, self.slack_error = uncertain, slack_error

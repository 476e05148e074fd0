"""The states of an approval request and the transitions between them."""

from __future__ import annotations

PROPOSED, PENDING, APPROVED, EXECUTING = "proposed", "pending", "approved", "executing"
SUCCEEDED, FAILED, UNKNOWN = "succeeded", "failed", "unknown"
REJECTED, EXPIRED, CANCELLED = "rejected", "expired", "cancelled"

TRANSITIONS: dict[str, frozenset[str]] = {
    PROPOSED: frozenset({PENDING, CANCELLED, EXPIRED}),
    PENDING: frozenset({APPROVED, REJECTED, CANCELLED, EXPIRED}),
    # failed without running: a guardrail (rate limit, freeze, kill switch) refused it at run time
    APPROVED: frozenset({EXECUTING, CANCELLED, EXPIRED, FAILED}),
    EXECUTING: frozenset({SUCCEEDED, FAILED, UNKNOWN}),
    # only a late result (the run outlived its lease or timeout and was marked unknown) moves it on
    UNKNOWN: frozenset({SUCCEEDED, FAILED}),
}
OPEN = frozenset({PROPOSED, PENDING, APPROVED})
FINAL = frozenset({SUCCEEDED, FAILED, UNKNOWN, REJECTED, EXPIRED, CANCELLED})


def can_move(src: str, dst: str) -> bool:
    """Return whether the state machine allows src -> dst."""
    return dst in TRANSITIONS.get(src, frozenset())

"""The states of an approval request and the transitions between them."""

from __future__ import annotations

PROPOSED, PENDING, APPROVED, EXECUTING = "proposed", "pending", "approved", "executing"
SUCCEEDED, FAILED, UNKNOWN = "succeeded", "failed", "unknown"
REJECTED, EXPIRED, CANCELLED = "rejected", "expired", "cancelled"

TRANSITIONS: dict[str, frozenset[str]] = {
    PROPOSED: frozenset({PENDING, CANCELLED, EXPIRED}),
    PENDING: frozenset({APPROVED, REJECTED, CANCELLED, EXPIRED}),
    APPROVED: frozenset({EXECUTING, CANCELLED, EXPIRED}),
    EXECUTING: frozenset({SUCCEEDED, FAILED, UNKNOWN}),
}
OPEN = frozenset({PROPOSED, PENDING, APPROVED})
FINAL = frozenset({SUCCEEDED, FAILED, UNKNOWN, REJECTED, EXPIRED, CANCELLED})


def can_move(src: str, dst: str) -> bool:
    """Return whether the state machine allows src -> dst."""
    return dst in TRANSITIONS.get(src, frozenset())

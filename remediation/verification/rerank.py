"""Try the next fix: an action judged ineffective, partial or harmful on a target drops below the rest.

The observation already carries the failed action's effect (its ``recent_action`` feature and the
metrics after it); on top of that, every (action, target) pair the incident's verdicts found wanting is
moved behind the untried ones, so the card's first suggestion is a new fix. Nothing runs without a new
approval: re-ranking only changes what the card offers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from playbooks.catalog import Catalog
from remediation.policies.base import Policy, RankedAction
from sim.observation import Observation

RETRY_VERDICTS = frozenset({"ineffective", "partial", "harmful"})
T = TypeVar("T", bound=RankedAction)


def failed_pairs(events: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str | None]]:
    """Return the (action, target) pairs whose verification on this timeline asked for another fix."""
    return frozenset(
        (str(e.get("action")), e.get("target"))
        for e in events
        if e.get("type") == "note"
        and e.get("verdict") in RETRY_VERDICTS
        and e.get("action")
        and e.get("canary") != "passed"  # a canary healing only its share is partial by design
    )


def demote(ranked: Sequence[T], failed: frozenset[tuple[str, str | None]]) -> list[T]:
    """Return ``ranked`` with the failed pairs moved to the end (order kept otherwise)."""
    keep = [r for r in ranked if (r.action, r.target) not in failed]
    return keep + [r for r in ranked if (r.action, r.target) in failed]


def rerank(
    policy: Policy, observation: Observation, k: int, failed: frozenset[tuple[str, str | None]]
) -> list[RankedAction]:
    """Rank ``k`` actions with the failed pairs behind every untried one."""
    if not failed:
        return policy.rank(observation, k)
    return demote(policy.rank(observation, k + len(failed)), failed)[:k]


def harmful_without_undo(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str | None]]:
    """Return (action, target) of harmful verdicts on this timeline whose undo was not run automatically."""
    return [
        (str(e.get("action")), e.get("target"))
        for e in events
        if e.get("type") == "note"
        and e.get("verdict") == "harmful"
        and not e.get("undo_request_id")
        and not e.get("canary_undo_request_id")  # a failed canary is undone on its own
    ]


def offer_undo(
    ranked: Sequence[RankedAction], events: Iterable[Mapping[str, Any]], catalog: Catalog, k: int
) -> list[RankedAction]:
    """Put the inverse of the latest harmful action first (when the catalog names one and it was not undone)."""
    harmful = harmful_without_undo(events)
    if not harmful:
        return list(ranked)
    action, target = harmful[-1]
    spec = catalog.actions.get(action)
    if spec is None or spec.rollback is None:
        return list(ranked)
    inverse = catalog.get(spec.rollback)
    undo = RankedAction(
        action=inverse.id, target=target, confidence=1.0, risk=inverse.risk.value,
        reason=f"undo: {action} was judged harmful", score=float("inf"),
    )  # fmt: skip
    rest = [r for r in ranked if (r.action, r.target) != (undo.action, undo.target)]
    return [undo, *rest][:k]

"""Which policy ranks an incident's card (production, or the canary on its share) and the rankings kept beside it.

With a shadow version set, every incident state is also ranked by the shadow (one forward pass, never
shown); with a canary, a deterministic share of incidents is ranked and shown by the canary, labelled on
the card. Each ranking is recorded with the guardrails' plan-stage verdict of every item, so `remediate
policy report` can compare them with what people approved and what worked (docs/policy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from bot.services import Services
from remediation.guardrails.decide import Context, decide
from remediation.policies import Policy, RankedAction
from remediation.registry import rankings
from remediation.registry.live import LivePolicy
from sim.observation import Observation


class Ranker(NamedTuple):
    """The policy that ranks one incident's card, and how the card names it."""

    policy: Policy
    version: str
    label: str
    arm: str  # production | canary


def ranker_for(services: Services, incident_id: str) -> Ranker:
    """Return the canary on its share of incidents, else the serving policy."""
    policy = services.policy
    if isinstance(policy, LivePolicy):
        slot = policy.for_incident(incident_id)
        if slot.source == "canary":
            label = f"{slot.label} (canary: {policy.canary_share:.0%} of incidents)"
            return Ranker(slot.policy, slot.version, label, "canary")
    return Ranker(policy, policy.version, policy.name, "production")


def _items(ranked: list[RankedAction], context: Context) -> list[dict[str, Any]]:
    out = []
    for item in ranked:
        decision = decide(item.action, item.target, dict(item.params), None, context)
        out.append({"action": item.action, "target": item.target, "confidence": item.confidence,
                    "risk": item.risk, "allowed": decision.allowed, "code": decision.code})  # fmt: skip
    return out


def record_rankings(services: Services, *, db_session: Session, record: Mapping[str, Any], observation: Observation,
                    shown: list[RankedAction], ranker: Ranker, context: Context, now: datetime) -> None:  # fmt: skip
    """Keep the shown ranking and the shadow's (ranked here) for this state, when a shadow or canary runs."""
    policy = services.policy
    if not isinstance(policy, LivePolicy) or (policy.shadow is None and policy.canary is None):
        return
    step = sum(1 for e in record.get("events", []) if e.get("type") == "action")
    rows = [(ranker.arm, ranker.version, shown)]
    shadow = policy.shadow
    if shadow is not None:
        rows.append(("shadow", shadow.version, shadow.policy.rank(observation, max(3, len(shown)))))
    for role, version, ranked in rows:
        rankings.record(db_session=db_session, incident_id=str(record["id"]), step=step, role=role, arm=ranker.arm,
                        version=version, ranked=_items(ranked, context), at=now)  # fmt: skip

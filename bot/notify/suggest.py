"""Rank an incident's actions with the policy and annotate each with guardrails and request state."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy.orm import Session

from bot import tracing
from bot.notify.shadow import ranker_for, record_rankings
from bot.notify.similar import similar_past
from bot.services import Services
from incidents_db import incidents, verifications
from remediation.approvals import service as approvals
from remediation.approvals import states as st
from remediation.approvals import suggestions
from remediation.executors.base import supports_canary
from remediation.guardrails.decide import Decision, decide
from remediation.guardrails.rbac import source_notes
from remediation.monitoring.live import incident_telemetry
from remediation.policies import Policy, RankedAction
from remediation.policies.base import rank_avoiding
from remediation.policies.observe import SignalOf, alert_labels, observation_from_record
from remediation.similar.memory import Similar
from remediation.verification.canary import offered
from remediation.verification.rerank import demote, failed_pairs, offer_undo
from sim.observation import Observation


@dataclass(frozen=True)
class SuggestionView:
    """One ranked suggestion as the card shows it."""

    n: int
    ranked: RankedAction
    decision: Decision
    request: approvals.RequestView | None
    token: str = ""
    inverse: str | None = None  # the catalog's undo of the action: the card offers "undo if harmful"
    editable: bool = False  # the action has parameters: the card offers Edit before approving
    canary: bool = False  # canary-able on a target with several replicas: the card offers "Canary first"

    @property
    def approvable(self) -> bool:
        """Return whether the card offers Approve / Reject: never once its request is final."""
        if self.request is not None and self.request.state in st.FINAL:
            return False
        return self.decision.allowed


@dataclass(frozen=True)
class Ranking:
    """An incident record, who requests its actions, and its suggestions."""

    record: dict[str, Any]
    requester: str
    suggestions: tuple[SuggestionView, ...]
    not_understood: frozenset[tuple[str, str]] = frozenset()  # (alert name, service) the policy cannot read
    unknown_to_graph: tuple[str, ...] = ()  # the incident's services the service graph does not know
    telemetry_lost: tuple[str, ...] = ()  # "service (why)": stale snapshots or vanished metrics (F7)
    similar: tuple[Similar, ...] = ()  # the most similar past incidents and what fixed them
    recurring: tuple[tuple[str, str | None, int], ...] = ()  # (action, target, runs in the window)
    ranked_by: str = ""  # the policy that ranked this card (the canary, labelled, on its share)
    access: tuple[str, ...] = ()  # RBAC group sources failing now (docs/safety.md): who may approve is stale


# Without a graph node the ranking knows nothing of a service's kind, callers or state, so a card offers
# no action on it: only global ones (escalate, wait) and actions on services the graph knows.
SAFE_POOL = 64  # how deep to look for safe suggestions when some are dropped


def unknown_to_graph(services: Services, record: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the record's services missing from the live graph (none when there is no graph at all)."""
    graph = services.topology
    if graph is None:
        return ()
    return tuple(sorted(str(s) for s in record.get("services") or () if s and str(s) not in graph.index))


def _safe_ranked(
    policy: Policy, observation: Observation, k: int, unknown: tuple[str, ...]
) -> list[RankedAction]:
    """Return the top-k ranked actions that act on no service of ``unknown``."""
    return rank_avoiding(policy, observation, k, frozenset(unknown), max(k, SAFE_POOL))


def _traced(span: Span, ranked: list[RankedAction], began: float) -> None:
    """Name the ranking's outcome on its span: the top action, its confidence, the time it took."""
    span.set_attribute("remediate.rank_ms", round((time.perf_counter() - began) * 1000, 3))
    if ranked:
        top = ranked[0]
        span.set_attribute("remediate.top_action", f"{top.action} {top.target or ''}".strip())
        span.set_attribute("remediate.confidence", float(top.confidence))


def not_understood(record: Mapping[str, Any], signal_of: SignalOf) -> frozenset[tuple[str, str]]:
    """Return (name, service) of the record's alerts the vocabulary maps to no policy signal."""
    return frozenset(
        (str(e.get("name")), str(e.get("service")))
        for e in record.get("events", [])
        if e.get("type") == "alert" and signal_of(str(e.get("name")), alert_labels(e)) is None
    )


def rank(
    services: Services, *, db_session: Session, incident_id: str, k: int | None = None, fresh: bool = False
) -> Ranking:
    """Return the incident's top-k suggestions with their plan-stage guardrail decision and request.

    Each shown suggestion is stored (`remediation.approvals.suggestions.show`, flushed: commit soon)
    and carries the token its buttons send; its request is the one its buttons act on. With ``fresh``
    (``/remediate suggest``), a suggestion whose request is final is offered again as a new generation.
    """
    rec = incidents.record(db_session=db_session, incident_id=incident_id)
    requester = incidents.requester_of(rec) or services.settings.requester
    if rec.get("resolved_at"):
        return Ranking(rec, requester, ())
    now = services.clock()
    signal_of = services.vocabulary.signal_of  # real alert names -> the policy's signals (memoised)
    observation, _ = observation_from_record(rec, topology=services.topology, now=now, signal_of=signal_of)
    unknown = unknown_to_graph(services, rec)
    top = k or services.settings.top_k
    ranker = ranker_for(services, rec["id"])  # production, or the canary on its share (docs/policy.md)
    failed = failed_pairs(rec.get("events", []))
    with tracing.span("ranking", policy=services.policy.version, k=top, incident_id=incident_id) as span:
        began = time.perf_counter()
        ranked = (
            _safe_ranked(ranker.policy, observation, top, unknown)
            if unknown
            else ranker.policy.rank(observation, top + len(failed))
        )
        # verified remediation: failed fixes go behind untried ones; a harmful one's undo comes first
        ranked = offer_undo(demote(ranked, failed), rec.get("events", []), services.catalog, top)[:top]
        _traced(span, ranked, began)
    context = replace(
        approvals.build_context(db_session=db_session, guard=services.guard, stage="plan"),
        requester=requester,
    )
    views = []
    for n, item in enumerate(ranked, start=1):
        decision = decide(item.action, item.target, dict(item.params), None, context)
        fix = suggestions.Fix(
            item.action, item.target, dict(item.params), n, item.score, item.confidence, item.risk,
            item.expected_ttm_s, item.reason, ranker.version,
        )  # fmt: skip
        shown = suggestions.show(db_session=db_session, incident_id=rec["id"], fix=fix, now=now, fresh=fresh)
        request = (
            approvals.get(db_session=db_session, request_id=shown.request_id) if shown.request_id else None
        )
        spec = services.catalog.actions.get(item.action)
        inverse = spec.rollback if spec is not None else None
        editable = spec is not None and bool(spec.params)
        canary = offered(services.guard, item.action, item.target, services.topology) and supports_canary(
            services.executor, item.action
        )
        views.append(SuggestionView(n, item, decision, request, shown.token, inverse, editable, canary))
        if not decision.allowed:
            services.metrics.denied(shown.token, decision.code, n)
    services.metrics.suggestions.labels(policy=services.policy.version).inc(len(views))
    record_rankings(services, db_session=db_session, record=rec, observation=observation, shown=list(ranked),
                    ranker=ranker, context=context, now=now)  # fmt: skip
    lost = incident_telemetry(
        db_session=db_session, record=rec, now=now, max_age_s=services.settings.snapshot_max_age_s
    )
    similar = similar_past(services, db_session=db_session, record=rec, observation=observation)
    again = recurring(services, db_session, rec, now)
    return Ranking(
        rec,
        requester,
        tuple(views),
        not_understood(rec, signal_of),
        unknown,
        lost,
        similar,
        again,
        ranked_by=ranker.label,
        access=source_notes(services.rbac),
    )


def recurring(
    services: Services, db_session: Session, rec: Mapping[str, Any], now: datetime
) -> tuple[tuple[str, str | None, int], ...]:
    """Return the incident's fixes that ran ``recurring_fix_n`` times or more in the window (docs/verification.md)."""
    since = now - timedelta(seconds=services.settings.recurring_fix_window_s)
    pairs = {
        (str(e.get("action")), e.get("target")) for e in rec.get("events", []) if e.get("type") == "action"
    }
    out = []
    for action, target in sorted(pairs, key=str):
        runs = verifications.runs_of(db_session=db_session, action=action, target=target, since=since)
        if runs >= services.settings.recurring_fix_n:
            out.append((action, target, runs))
    return tuple(out)

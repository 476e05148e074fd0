"""Which service an alert is about, from its labels: an ordered list, monitoring components skipped.

A real alert carries labels of the workload it is about (``container: carts``, ``pod: carts-7d9f...``)
beside labels of whatever measured it (``job: kube-state-metrics``, ``service:
kube-prometheus-stack-kube-state-metrics``). The labels are read in the configured order
(`Settings.alert_service_labels`); a value naming a monitoring component (the vocabulary's
``monitoring_components``) is skipped; a pod name becomes its workload (ReplicaSet and pod hash
stripped, a StatefulSet's ordinal dropped); and a value naming a node of the service graph wins over
one that does not. When every value names a monitoring component, the alert is about that component
and the first one is taken. See docs/alert-conventions.md.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bot.alerts.errors import BadPayloadError
from bot.notify.mrkdwn import clip
from bot.services import Services
from playbooks.vocabulary import Vocabulary

MAX_SERVICE = 200  # the store's String(200) service column
# Kubernetes' pod-template-hash and pod suffixes use this alphabet (no vowels, no 0, 1, 3).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_REPLICASET_POD = re.compile(rf"(?P<workload>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}")
_ORDINAL = re.compile(r"(?P<workload>.+)-\d+")
_DAEMONSET_POD = re.compile(rf"(?P<workload>.+)-{_SAFE}{{5}}")
POD_LABELS = ("pod", "pod_name", "kubernetes_pod_name")
CLAIM_LABELS = ("persistentvolumeclaim",)
SKIP_COMPONENT = "names a monitoring component"


def pod_workloads(pod: str) -> list[str]:
    """Return the workloads a pod name may belong to, likeliest first (the pod itself when none fits)."""
    guesses = [
        m["workload"]
        for pattern in (_REPLICASET_POD, _ORDINAL, _DAEMONSET_POD)
        if (m := pattern.fullmatch(pod)) is not None
    ]
    return guesses or [pod]


def claim_workloads(claim: str) -> list[str]:
    """Return the workloads a volume claim may belong to: ``data-db-0`` is template ``data`` of ``db``."""
    m = _ORDINAL.fullmatch(claim)
    if m is None:
        return [claim]
    parts = m["workload"].split("-")
    return ["-".join(parts[i:]) for i in range(1, len(parts))] + [m["workload"]]


@dataclass(frozen=True)
class Candidate:
    """One label the resolution read: its value, the service it names, and why it was skipped if it was."""

    label: str
    value: str
    service: str
    skipped: str | None = None
    in_graph: bool = False

    def __str__(self) -> str:
        named = f"{self.label}={self.value}" + (
            f" (workload {self.service})" if self.service != self.value else ""
        )
        if self.skipped:
            return f"{named}: skipped, {self.skipped}"
        return named + (": names a node of the service graph" if self.in_graph else "")


@dataclass(frozen=True)
class Resolution:
    """The service an alert is about, the label it came from, and every label that was read, in order."""

    service: str
    label: str
    candidates: tuple[Candidate, ...]
    why: str

    def __str__(self) -> str:
        return f"{self.service} from {self.label}: {self.why}"


@dataclass(frozen=True)
class ServiceResolver:
    """Resolves alert labels to a service: the label order, the vocabulary's skip list, the graph's nodes."""

    labels: tuple[str, ...]
    vocabulary: Vocabulary | None = None
    nodes: Collection[str] = frozenset()

    def _candidate(self, label: str, value: str) -> Candidate:
        guesses = [value]
        if label in POD_LABELS:
            guesses = pod_workloads(value)
        elif label in CLAIM_LABELS:
            guesses = claim_workloads(value)
        guesses = [g for g in guesses if any(ch.isalnum() for ch in g)] or [value]  # "a--0" names no workload
        service = next((g for g in guesses if g in self.nodes), guesses[0])
        skipped = None
        if len(service) > MAX_SERVICE:
            skipped = f"longer than {MAX_SERVICE} characters"
        elif self.vocabulary is not None and (
            self.vocabulary.monitoring_component(value) or self.vocabulary.monitoring_component(service)
        ):
            skipped = SKIP_COMPONENT
        return Candidate(label, value, service, skipped, service in self.nodes)

    def resolve(self, labels: Mapping[str, str]) -> Resolution | None:
        """Return the service the labels name and why, or None when no label of the list is set."""
        read = tuple(self._candidate(k, labels[k]) for k in self.labels if labels.get(k, "").strip())
        usable = [c for c in read if c.skipped is None]
        in_graph = next((c for c in usable if c.in_graph), None)
        if in_graph is not None:
            why = "the first value naming a node of the service graph"
            if usable[0] is not in_graph:
                why += f" (wins over {usable[0].label}={usable[0].value}, which names none)"
            return Resolution(in_graph.service, in_graph.label, read, why)
        if usable:
            return Resolution(usable[0].service, usable[0].label, read, "the first usable label in order")
        component = next((c for c in read if c.skipped == SKIP_COMPONENT), None)
        if component is not None:
            why = "every label names a monitoring component: the alert is about that component"
            return Resolution(component.service, component.label, read, why)
        return None

    def service_of(self, labels: Mapping[str, str]) -> Resolution:
        """Return the resolution; raise BadPayloadError naming the labels to add when none is usable."""
        found = self.resolve(labels)
        if found is not None:
            return found
        name = clip(str(labels.get("alertname", "")), 100)
        read = [
            f"labels.{k}: a service name has at most {MAX_SERVICE} characters, got {len(labels[k])}"
            for k in self.labels
            if labels.get(k, "").strip()
        ]
        if read:
            raise BadPayloadError(read[0])
        raise BadPayloadError(
            f"alert {name!r} names no service; add one of the labels {', '.join(self.labels)}"
        )


def resolver_for(services: Services) -> ServiceResolver:
    """Return the resolver of the running bot: its label order, vocabulary and current service graph."""
    nodes = frozenset(services.topology.services) if services.topology is not None else frozenset()
    return ServiceResolver(services.settings.alert_service_labels, services.vocabulary, nodes)

"""Property tests of service resolution and the vocabulary: whatever labels arrive, no crash, a bounded answer.

Pure functions over the real built-in vocabulary; the same code runs at intake (test_fuzz_intake.py
drives it through the app) and in `remediate alerts explain`.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerts.errors import BadPayloadError
from bot.alerts.resolve import MAX_SERVICE, ServiceResolver, claim_workloads, pod_workloads
from bot.settings import ALERT_SERVICE_LABELS
from playbooks.vocabulary import load_vocabulary
from sim.observation import ALERTS
from tests.fuzz import examples

VOCABULARY = load_vocabulary(ALERTS)
NODES = frozenset({"carts", "cartservice", "db", "redis-cart", "frontend"})
KEYS = st.one_of(st.sampled_from(ALERT_SERVICE_LABELS), st.text(max_size=12))
VALUES = st.one_of(
    st.sampled_from(sorted(NODES)),
    st.sampled_from(
        ("kube-state-metrics", "kube-prometheus-stack-kubelet", "carts-7d9f8b6c5-x2x9z", "db-0", "-0")
    ),
    st.sampled_from(("data-db-0", "a--0", "-", " ", "", "Prometheus", "x" * 250)),
    st.text(max_size=40),
    st.text(alphabet="bcd2-0", max_size=30),
)
LABELS = st.dictionaries(KEYS, VALUES, max_size=8)
FUZZ = settings(max_examples=examples(300), deadline=None)


@FUZZ
@given(
    labels=LABELS, nodes=st.sampled_from((frozenset(), NODES)), order=st.permutations(ALERT_SERVICE_LABELS)
)
def test_resolution_never_crashes_and_names_a_service_it_read(
    labels: dict[str, str], nodes: frozenset[str], order: list[str]
) -> None:
    resolver = ServiceResolver(tuple(order), VOCABULARY, nodes)
    try:
        found = resolver.service_of(labels)
    except BadPayloadError as exc:
        assert str(exc).strip()
        return
    assert found.service and len(found.service) <= MAX_SERVICE
    assert found.label in labels and found.label in order
    chosen = next(c for c in found.candidates if c.label == found.label)
    assert chosen.service == found.service and chosen.value == labels[found.label]
    usable = [c for c in found.candidates if c.skipped is None]
    if any(c.in_graph for c in usable):
        assert found.service in nodes  # a graph node wins
    elif usable:
        assert chosen is usable[0]  # else the first usable label
    else:
        assert VOCABULARY.monitoring_component(chosen.value) or VOCABULARY.monitoring_component(
            chosen.service
        )
    assert str(found) and all(str(c) for c in found.candidates)


@FUZZ
@given(
    name=st.text(max_size=200), labels=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5)
)
def test_the_vocabulary_answers_a_signal_or_none_for_any_alert(name: str, labels: dict[str, str]) -> None:
    found = VOCABULARY.match(name, labels)
    assert found is None or (found.signal in ALERTS and str(found))


@FUZZ
@given(name=st.text(max_size=60))
def test_workload_guesses_are_never_empty(name: str) -> None:
    for guesses in (pod_workloads(name), claim_workloads(name)):
        assert guesses and all(isinstance(g, str) for g in guesses)

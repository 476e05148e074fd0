"""`bot.observe.merge`: the front's and the work process's expositions as one, each family once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.observe.merge import merged
from tests.bot.observe.conftest import samples


def _registry() -> tuple[CollectorRegistry, Counter, Histogram, Gauge]:
    r = CollectorRegistry(auto_describe=True)
    counter = Counter("remediate_things", "Things.", ["kind"], registry=r)
    histogram = Histogram("remediate_wait_seconds", "Waits.", buckets=(0.1, 1.0), registry=r)
    gauge = Gauge("remediate_drift", "Drift.", ["group"], registry=r)
    return r, counter, histogram, gauge


def test_counters_and_histograms_add_gauges_come_from_the_work_process() -> None:
    front, work = _registry(), _registry()
    front[1].labels(kind="a").inc(2)
    work[1].labels(kind="a").inc(3)
    work[1].labels(kind="b").inc()
    front[2].observe(0.05)
    work[2].observe(0.5)
    front[3].labels(group="front-only").set(7)
    front[3].labels(group="x").set(0)  # the front's untouched copy does not shadow the work's value
    work[3].labels(group="x").set(0.25)
    Gauge("remediate_store_up", "Store.", registry=front[0]).set(1)
    text = merged(generate_latest(front[0]), generate_latest(work[0])).decode()
    found = samples(text)
    assert found['remediate_things_total{kind="a"}'] == 5.0
    assert found['remediate_things_total{kind="b"}'] == 1.0
    assert found['remediate_wait_seconds_bucket{le="0.1"}'] == 1.0
    assert found['remediate_wait_seconds_bucket{le="+Inf"}'] == 2.0
    assert found["remediate_wait_seconds_count"] == 2.0 and found["remediate_wait_seconds_sum"] == 0.55
    assert found['remediate_drift{group="x"}'] == 0.25 and found['remediate_drift{group="front-only"}'] == 7
    assert found["remediate_store_up"] == 1.0 and found["remediate_work_process_up"] == 1.0
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))
    assert sum(line.startswith("# TYPE remediate_things_total ") for line in text.splitlines()) == 1


def test_without_the_work_process_the_front_answers_alone() -> None:
    front = _registry()
    front[1].labels(kind="a").inc()
    found = samples(merged(generate_latest(front[0]), None).decode())
    assert found['remediate_things_total{kind="a"}'] == 1.0 and found["remediate_work_process_up"] == 0.0
    found = samples(merged(generate_latest(front[0]), b"not an exposition {").decode())
    assert found['remediate_things_total{kind="a"}'] == 1.0 and found["remediate_work_process_up"] == 0.0


def test_the_last_answer_is_merged_when_the_work_process_did_not_answer() -> None:
    front, work = _registry(), _registry()
    front[1].labels(kind="a").inc()
    work[1].labels(kind="a").inc(4)
    found = samples(merged(generate_latest(front[0]), generate_latest(work[0]), answered=False).decode())
    assert found['remediate_things_total{kind="a"}'] == 5.0 and found["remediate_work_process_up"] == 0.0

"""One /metrics for the two processes of `remediate serve` (docs/observability.md, "Two processes").

The front asks the work process for its exposition at each scrape (`bot.app.handoff.WorkProcess.scrape`)
and merges it into its own, family by family (each family once: a repeated HELP/TYPE breaks
Prometheus's parser):

- counters, histograms (buckets, ``_sum``, ``_count``) and summaries: samples with the same name and
  labels are added; samples only one process has are kept;
- gauges: the work process's sample wins for the same labels (the bot's own gauges, audit head and
  drift, are set by the scheduled jobs, which run there; the front's copy is the untouched 0), the
  front's samples for other labels are kept; ``*_created`` gauges take the earlier time;
- the store-derived series are the front's alone: the work process never registers the store collector.

``remediate_work_process_up`` says whether the work process answered this scrape. When it did not
(killed, restarting, slow) the front merges its last answer instead, so the summed counters do not dip
and jump back (a spurious increase for `rate`); a restarted work process's counters start from zero,
which `rate` reads as one counter reset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

log = logging.getLogger("remediate.metrics")
UP = "remediate_work_process_up"
ADDED = {"counter", "histogram", "summary", "gaugehistogram"}


class _Families:
    """The merged families, in the shape `generate_latest` collects from."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


def _combine(mine: Metric, theirs: Metric) -> None:
    """Merge ``theirs`` (the work process's) into ``mine`` (the front's) in place."""
    index = {_key(s): i for i, s in enumerate(mine.samples)}
    for sample in theirs.samples:
        at = index.get(_key(sample))
        if at is None:
            index[_key(sample)] = len(mine.samples)
            mine.samples.append(sample)
            continue
        own = mine.samples[at]
        if mine.type in ADDED:
            value = own.value + sample.value
        elif mine.name.endswith("_created"):
            value = min(own.value, sample.value)
        else:  # a gauge: the work process's value
            value = sample.value
        mine.samples[at] = own._replace(value=value)


def merged(front: bytes, work: bytes | None, *, answered: bool = True) -> bytes:
    """Return the front's exposition merged with the work process's (None: none yet).

    ``answered``: ``work`` is this scrape's answer, not the last one kept from an earlier scrape.
    """
    families = {f.name: f for f in text_string_to_metric_families(front.decode())}
    up = answered and work is not None
    if work is not None:
        try:
            theirs = list(text_string_to_metric_families(work.decode()))
        except (ValueError, UnicodeDecodeError) as exc:  # never expected: the same library wrote it
            log.warning("metrics: the work process's exposition does not parse: %s", exc)
            theirs, up = [], False
        for family in theirs:
            mine = families.get(family.name)
            if mine is None:
                families[family.name] = family
            elif mine.type == family.type:
                _combine(mine, family)
            else:
                log.warning("metrics: %s is a %s here, a %s in the work process; the front's is exported",
                            family.name, mine.type, family.type)  # fmt: skip
    families[UP] = GaugeMetricFamily(
        UP, "1 when the work process answered this scrape (its series are included).", 1.0 if up else 0.0
    )
    return generate_latest(_Families(families.values()))  # type: ignore[arg-type]

"""Feed metric snapshots from Prometheus to the bot's `POST /snapshots`.

A queries file names, per snapshot metric, one PromQL expression whose result vector carries the
service in a label (``service_label``); per-call error rates come from expressions that also carry the
callee (``callee_label``) and become ``error_rate_to:<callee>``. Each round runs every query once at
the same evaluation time (Prometheus' instant-query API), groups the samples by service and posts
them in one delivery. A query that fails is reported and skipped; the others still go out.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.alerts.snapshots import MAX_SNAPSHOTS
from bot.feeds.errors import FeedError
from playbooks.yamlfiles import load_yaml_model
from remediation.errors import JsonGetError
from remediation.httpget import error_field, get_json
from sim.observation import EDGE_METRIC

FORMAT = "remediate.snapshot-queries/v1"


class EdgeQuery(BaseModel):
    """A per-call error rate: one sample per (caller, callee) pair."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    callee_label: str = Field(min_length=1)


class QueryFile(BaseModel):
    """The queries file (`deploy/prometheus/snapshot-queries.yaml` is a full example)."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    service_label: str = Field(default="service", min_length=1)
    metrics: dict[str, str] = Field(default_factory=dict)
    edges: list[EdgeQuery] = Field(default_factory=list)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != FORMAT:
            raise ValueError(f"expected {FORMAT!r}, got {value!r}")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not name.strip() or name.startswith(EDGE_METRIC):
                raise ValueError(
                    f"metric name {name!r}: give a name such as error_rate (edges go under edges:)"
                )
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"metric {name!r} needs a PromQL expression")
        return value


def load_queries(path: Path) -> QueryFile:
    """Read and validate a queries file; raise FeedError naming the file and the broken key."""
    queries = load_yaml_model(path, QueryFile, FeedError)
    if not queries.metrics and not queries.edges:
        raise FeedError(f"{path}: no queries; add at least one under metrics: or edges:")
    return queries


def _http_reason(exc: urllib.error.HTTPError) -> str:
    """Return the ``error`` of a JSON error body (Prometheus' and the bot's form), else the HTTP reason."""
    return error_field(exc) or str(exc.reason)


@dataclass
class Round:
    """What one round did: snapshots built and sent, queries that failed, the bot's answer."""

    at: datetime
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped_samples: int = 0
    answers: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False

    def as_json(self) -> dict[str, Any]:
        """Return the round in the shape `remediate snapshots feed --once --json` prints."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "snapshots": len(self.snapshots),
            "values": sum(len(s["values"]) for s in self.snapshots),
            "failed_queries": self.failed,
            "skipped_samples": self.skipped_samples,
            "delivered": self.delivered,
            "answers": self.answers,
        }


class PrometheusFeed:
    """Runs the queries against Prometheus and posts the snapshots to the bot."""

    def __init__(
        self, queries: QueryFile, *, prometheus: str, bot: str, token: str | None, timeout: float = 10.0
    ) -> None:
        self.queries = queries
        self.prometheus = prometheus.rstrip("/")
        self.bot = bot.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _instant(self, expr: str, at: datetime) -> list[dict[str, Any]]:
        """Return the result vector of one instant query; raise FeedError with Prometheus' reason."""
        params = urllib.parse.urlencode({"query": expr, "time": f"{at.timestamp():.3f}"})
        try:
            body = get_json(f"{self.prometheus}/api/v1/query?{params}", timeout=self.timeout)
        except JsonGetError as exc:
            if exc.kind == "http":
                raise FeedError(f"HTTP {exc.status}: {exc.error or exc.reason}") from None
            if exc.kind == "network":
                raise FeedError(f"cannot reach {self.prometheus}: {exc.reason}") from None
            raise FeedError(str(exc)) from None  # the answer is not JSON
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error", "unknown error") if isinstance(body, dict) else "unexpected answer"
            raise FeedError(str(reason))
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise FeedError(
                f"expected an instant vector, got {data.get('resultType')!r}; wrap it in a function"
            )
        return list(data.get("result") or [])

    @staticmethod
    def _number(sample: dict[str, Any]) -> float | None:
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def collect(self, at: datetime | None = None) -> Round:
        """Run every query at one evaluation time and group the samples into snapshots."""
        at = at or datetime.now(UTC)
        result = Round(at=at)
        by_service: dict[str, dict[str, float]] = {}
        label = self.queries.service_label
        jobs: Iterable[tuple[str, str, str | None]] = [
            *((name, expr, None) for name, expr in self.queries.metrics.items()),
            *((f"edges[{i}]", edge.query, edge.callee_label) for i, edge in enumerate(self.queries.edges)),
        ]
        for name, expr, callee_label in jobs:
            try:
                samples = self._instant(expr, at)
            except FeedError as exc:
                result.failed.append({"query": name, "error": str(exc)})
                continue
            for sample in samples:
                labels = sample.get("metric") or {}
                service, value = labels.get(label), self._number(sample)
                key = name
                if callee_label is not None:
                    callee = labels.get(callee_label)
                    key = f"{EDGE_METRIC}{callee}" if callee else ""
                if not service or value is None or not key:
                    result.skipped_samples += 1
                    continue
                by_service.setdefault(str(service), {})[key] = value
        stamp = at.isoformat().replace("+00:00", "Z")
        result.snapshots = [
            {"service": service, "at": stamp, "values": values}
            for service, values in sorted(by_service.items())
        ]
        return result

    def send(self, result: Round) -> Round:
        """Post the round's snapshots to the bot (in deliveries of at most 1000); record the answers."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        result.delivered = True
        for start in range(0, len(result.snapshots), MAX_SNAPSHOTS):
            body = json.dumps({"snapshots": result.snapshots[start : start + MAX_SNAPSHOTS]}).encode()
            request = urllib.request.Request(
                f"{self.bot}/snapshots", data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    result.answers.append(json.loads(resp.read()))
            except urllib.error.HTTPError as exc:
                result.answers.append({"ok": False, "status": exc.code, "error": _http_reason(exc)})
                result.delivered = False
            except (urllib.error.URLError, OSError) as exc:
                result.answers.append(
                    {"ok": False, "error": f"cannot reach {self.bot}: {getattr(exc, 'reason', exc)}"}
                )
                result.delivered = False
        return result

"""Generated history follows remediate.incident/v1 and imports without a single refusal."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from playbooks.catalog import builtin_catalog
from sim.history import generate_history, write_history
from sim.resolve import resolve_topology

TYPES = {"alert", "metrics", "deploy", "config_change", "action", "note", "resolved"}


def ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None, text
    assert text.endswith("Z") or "+" in text[10:], text
    return value


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate_history(resolve_topology("hotel-reservation"), incidents=30, seed=5))


def test_every_record_follows_the_format_rules(records: list[dict]) -> None:
    catalog = builtin_catalog()
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert r["format"] == "remediate.incident/v1"
        assert r["title"] and r["severity"] in {"sev1", "sev2", "sev3", "sev4"}
        opened, resolved = ts(r["opened_at"]), ts(r["resolved_at"])
        assert resolved >= opened
        times = [ts(e["at"]) for e in r["events"]]
        assert times == sorted(times)
        assert r["events"][-1]["type"] == "resolved"
        for e in r["events"]:
            assert e["type"] in TYPES
            if e["type"] == "alert":
                assert e["status"] in {"firing", "resolved"} and e["name"] and e["service"]
            if e["type"] == "action":
                assert e["outcome"] in {"succeeded", "failed", "no_effect", "unknown"}
                assert e["action"] in catalog and e["target"] and e["actor"]
            if e["type"] == "metrics":
                assert all(isinstance(v, float | int) for v in e["values"].values())
        assert r["root_cause"]["fault"] and r["root_cause"]["service"] in r["services"]


def test_history_looks_like_a_human_team_handled_it(records: list[dict]) -> None:
    actions = [e for r in records for e in r["events"] if e["type"] == "action"]
    first = [
        next(e for e in r["events"] if e["type"] == "action")
        for r in records
        if any(e["type"] == "action" for e in r["events"])
    ]
    assert sum(e["action"] == "restart_service" for e in first) >= len(first) // 3  # restarts first
    assert any(e["outcome"] == "succeeded" for e in actions)
    assert any(e["outcome"] == "no_effect" for e in actions)
    symptomatic = [
        r for r in records
        if any(e["type"] == "action" and e["target"] not in {f["target"] for f in r["faults"]} for e in r["events"])
    ]  # fmt: skip
    assert symptomatic  # sometimes acts on a service that is not the cause
    fixed_by_truth = [
        r for r in records
        if any(e["type"] == "action" and e["outcome"] == "succeeded" and e["action"] == r["faults"][0]["fix"] for e in r["events"])
    ]  # fmt: skip
    assert len(fixed_by_truth) >= len(records) // 2  # usually gets there
    acks = [next(e for e in r["events"] if e["type"] == "note") for r in records]
    delays = [(ts(a["at"]) - ts(r["opened_at"])).total_seconds() for a, r in zip(acks, records, strict=True)]
    assert min(delays) >= 60
    assert any(e["type"] in ("deploy", "config_change") for r in records for e in r["events"])


def test_same_seed_same_file(tmp_path: Path) -> None:
    topo = resolve_topology("online-boutique")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_history(generate_history(topo, incidents=5, seed=9), a)
    write_history(generate_history(topo, incidents=5, seed=9), b)
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_text().splitlines()) == 5
    assert all(json.loads(line)["topology"] == "online-boutique" for line in a.read_text().splitlines())


def test_generated_history_imports_with_zero_refusals(tmp_path: Path, sqlite_url: str) -> None:
    from incidents_db.db import open_store
    from incidents_db.importer import import_lines

    out = tmp_path / "history.jsonl"
    count = write_history(generate_history(resolve_topology("generated:30:4"), incidents=25, seed=1), out)
    engine = open_store(sqlite_url)
    try:
        with out.open("rb") as fh:
            report = import_lines(engine=engine, lines=fh)
    finally:
        engine.dispose()
    assert report.refused == []
    assert report.imported == count == 25

"""`remediate postmortem show|list` as a user runs them: real subprocesses, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.db import open_store
from incidents_db.schema import IncidentRecord
from incidents_db.service import add_incident
from remediation.postmortem import service as postmortems
from sim.history import generate_history
from sim.topology import builtin_topology

JSON_KEYS = {
    "incident",
    "status",
    "version",
    "summary",
    "impact",
    "timeline",
    "actions",
    "root_cause",
    "action_items",
    "figures",
}
ACTION_KEYS = {
    "action",
    "target",
    "params",
    "suggested_rank",
    "policy",
    "requested_by",
    "approved_by",
    "outcome",
}


def remediate(args: list[str], *, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEDIATE_DATABASE_URL": url, "REMEDIATE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("REMEDIATE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _store(url: str) -> str:
    """Import one simulated incident, open another by hand and draft the first one's postmortem."""
    engine = open_store(url)
    record = next(iter(generate_history(builtin_topology("online-boutique"), incidents=1, seed=11)))
    with Session(engine) as s:
        add_incident(db_session=s, record=IncidentRecord.model_validate_json(json.dumps(record)))
        incidents.create(
            db_session=s,
            title="still burning",
            services=["cartservice"],
            severity="sev2",
            source="slack",
            now=datetime(2026, 12, 1, tzinfo=UTC),
        )
        postmortems.ensure_draft(
            db_session=s, incident_id=record["id"], now=datetime(2026, 12, 1, tzinfo=UTC)
        )
        s.commit()
    engine.dispose()
    return str(record["id"])


def test_show_in_every_format_list_and_refusals(db_url: str, tmp_path: Path) -> None:
    incident_id = _store(db_url)
    shown = remediate(["postmortem", "show", incident_id, "--format", "json"], url=db_url, data_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert set(report) >= JSON_KEYS and report["incident"] == incident_id and report["version"] == 1
    assert all({"at", "kind"} <= set(i) for i in report["timeline"])
    assert all(set(a) >= ACTION_KEYS for a in report["actions"]) and report["actions"]
    assert {"service", "fault", "evidence"} <= set(report["root_cause"]["inferred"])
    assert "recorded" in report["root_cause"]
    assert {"time_to_acknowledge_s", "time_to_mitigate_s", "time_to_resolve_s"} <= set(report["figures"])

    out = tmp_path / "pm.html"
    wrote = remediate(
        ["postmortem", "show", incident_id, "--format", "html", "--out", str(out)],
        url=db_url,
        data_dir=tmp_path,
    )
    assert wrote.returncode == 0 and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    md = remediate(["postmortem", "show", incident_id], url=db_url, data_dir=tmp_path)
    assert md.returncode == 0 and md.stdout.startswith(f"# Postmortem {incident_id}:")

    still_open = remediate(["postmortem", "show", "INC-1"], url=db_url, data_dir=tmp_path)
    assert still_open.returncode == 1 and "INC-1 is still open" in still_open.stderr
    assert len(still_open.stderr.strip().splitlines()) == 1
    no_version = remediate(
        ["postmortem", "show", incident_id, "--version", "2"], url=db_url, data_dir=tmp_path
    )
    assert no_version.returncode == 1 and "no postmortem version 2" in no_version.stderr
    bad = remediate(["postmortem", "show", incident_id, "--format", "pdf"], url=db_url, data_dir=tmp_path)
    assert bad.returncode == 1 and "expected md, html or json" in bad.stderr

    listed = remediate(["postmortem", "list", "--json"], url=db_url, data_dir=tmp_path)
    assert [(p["incident"], p["status"]) for p in json.loads(listed.stdout)] == [(incident_id, "draft")]
    none = remediate(["postmortem", "list", "--status", "published", "--json"], url=db_url, data_dir=tmp_path)
    assert json.loads(none.stdout) == []
    wrong = remediate(["postmortem", "list", "--status", "approved"], url=db_url, data_dir=tmp_path)
    assert wrong.returncode == 1 and "expected draft, in_review or published" in wrong.stderr

"""`remediate policy canary` and `remediate policy report` as a user runs them (subprocesses, a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

from incidents_db.db import make_engine, make_sessionmaker, upgrade
from tests.bot.cli.test_train_and_policy_cmds import ok_json, refused
from tests.remediation.registry.test_live import register_untrained


def test_canary_and_report_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    for n, version in enumerate(("cand-a", "cand-b")):
        register_untrained(make_sessionmaker(engine), tmp_path / "art", version, seed=n)
    engine.dispose()
    assert "no shadow or canary version" in refused(tmp_path, "policy", "report")
    assert ok_json(tmp_path, "policy", "canary", "cand-a", "--share", "0.2") == {
        "canary": "cand-a",
        "share": 0.2,
    }
    assert "at most 0.5" in refused(tmp_path, "policy", "canary", "cand-b", "--share", "0.9")
    assert "policy canary VERSION --share S" in refused(tmp_path, "policy", "canary", "cand-b")
    report = ok_json(tmp_path, "policy", "report")  # the canary's, with nothing ranked yet
    assert report["version"] == "cand-a" and report["states"] == 0
    assert set(report) >= {"agreement_with_production", "agreement_with_people", "time_to_mitigate_ope",
                           "guardrail_denials_top1", "canary_arms"}  # fmt: skip
    assert ok_json(tmp_path, "policy", "shadow", "cand-b")["status"] == "shadow"
    assert ok_json(tmp_path, "policy", "report")["version"] == "cand-b"  # the shadow first
    assert ok_json(tmp_path, "policy", "canary", "--end") == {"ended": "cand-a"}

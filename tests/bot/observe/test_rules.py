"""deploy/prometheus/remediate-rules.yaml: valid for the real promtool, every rule unit-tested, every rule has a runbook."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.bot.observe.conftest import run_promtool

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "remediate-rules.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "remediate-rules_test.yaml"
DOCS = ROOT / "docs" / "observability.md"


def _alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_promtool_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_a_broken_copy_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "remediate-rules.yaml"
    broken.write_text(
        RULES.read_text(encoding="utf-8").replace("remediate_outbox_dead > 0", "remediate_outbox_dead >")
    )
    assert run_promtool("check", "rules", str(broken)).returncode != 0


def test_every_rule_is_unit_tested_and_has_a_runbook_section() -> None:
    names = [str(rule["alert"]) for rule in _alerts()]
    tested = set(re.findall(r"alertname: (\S+)", RULES_TEST.read_text(encoding="utf-8")))
    assert set(names) <= tested, sorted(set(names) - tested)
    headings = set(re.findall(r"^### (\S+)$", DOCS.read_text(encoding="utf-8"), re.M))
    for rule in _alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook_url"] == f"docs/observability.md#{str(rule['alert']).lower()}"
        assert rule["alert"] in headings
    wanted = {"RemediateOutboxDeadLetters", "RemediateSlackErrors", "RemediateSnapshotFeedStale",
              "RemediatePolicyInputDrift", "RemediatePolicyBelowRunbook", "RemediateTopSuggestionDenied",
              "RemediateAuditVerificationFailing"}  # fmt: skip
    assert wanted <= set(names)

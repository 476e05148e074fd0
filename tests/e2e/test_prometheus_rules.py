"""deploy/prometheus/rules.yaml: valid for the real `promtool`, its unit tests pass, the bot understands it.

Needs Debian's ``prometheus`` package (it ships ``promtool``; ``deploy/ci/install-system-deps.sh``).
Missing it fails the test with that instruction, unless ``REMEDIATE_TEST_PROMETHEUS=off`` opts out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from playbooks.vocabulary import load_vocabulary
from sim.observation import ALERTS
from tests.bot.feeds.promserver import OPT_OUT

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yaml"
# Alerts that are about the alerting pipeline itself, never about a workload: routed away from the bot.
PIPELINE_ALERTS = {"Watchdog"}
# Labels an alert carries that the vocabulary needs to map it (it maps KubeContainerWaiting by reason).
EXAMPLE_LABELS = {"KubeContainerWaiting": {"reason": "ImagePullBackOff"}}


def promtool() -> str:
    """Return promtool's path; skip on opt-out, fail with the install instruction when it is missing."""
    if os.environ.get(OPT_OUT, "").lower() == "off":
        pytest.skip(f"{OPT_OUT}=off")
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed (Debian package prometheus): run "
            f"`sudo bash deploy/ci/install-system-deps.sh` (or set {OPT_OUT}=off to skip this test)"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_shipped_rules() -> None:
    done = _run("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_refuses_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    text = RULES.read_text(encoding="utf-8")
    broken.write_text(text.replace("[5m]) >= 1", "[5m] >= 1", 1), encoding="utf-8")
    done = _run("check", "rules", str(broken))
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())
    assert '"KubePodCrashLooping": could not parse expression' in said and "unclosed left parenthesis" in said


def test_promtool_unit_tests_of_two_rules_pass() -> None:
    done = _run("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_follows_the_conventions_and_the_bot_maps_it() -> None:
    vocabulary = load_vocabulary(ALERTS)
    rules = _rules()
    assert {"KubePodCrashLooping", "KubeDeploymentReplicasMismatch", "CPUThrottlingHigh", "TargetDown"} <= {
        str(r["alert"]) for r in rules
    }
    for rule in rules:
        name = str(rule["alert"])
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(notes, dict)
        assert labels.get("severity") in {"critical", "warning", "info", "none"}, name
        assert notes.get("summary") and notes.get("description"), name
        assert str(notes.get("runbook_url", "https://")).startswith("https://"), name
        if name not in PIPELINE_ALERTS:
            assert vocabulary.signal_of(name, EXAMPLE_LABELS.get(name, {})) is not None, (
                f"{name} is not in the alert vocabulary"
            )

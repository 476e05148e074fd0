"""The CLI builds the settings once, in the root callback; nothing but bot/settings/load.py reads the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("bot", "remediation", "incidents_db", "sim", "playbooks")
# Not remediate's knobs: Kubernetes' own variables (KUBERNETES_SERVICE_HOST inside a pod, KUBECONFIG as
# kubectl reads it) when no REMEDIATE_KUBECONFIG is set, and the environment a shell action's child
# process inherits.
STANDARD_ENVIRONMENT = {"remediation/executors/kubeauth.py", "remediation/executors/shell.py"}


def test_only_the_settings_module_reads_the_environment() -> None:
    reads = re.compile(r"\bos\.environ\b|\bgetenv\(|\bfrom os import environ\b")
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "bot" / "settings" / "load.py" and reads.search(path.read_text(encoding="utf-8"))
    ]
    offenders = [path for path in offenders if path not in STANDARD_ENVIRONMENT]
    assert offenders == []


def _cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "SLACK_"))}
    env.update({"REMEDIATE_DATA_DIR": str(tmp_path), "COLUMNS": "200", **extra})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_bad_setting_stops_only_the_commands_that_use_settings(tmp_path: Path) -> None:
    ok = _cli(tmp_path, "sim", "topologies", REMEDIATE_TOP_K="0")
    assert ok.returncode == 0, ok.stderr
    refused = _cli(tmp_path, "config", "show", REMEDIATE_TOP_K="0")
    assert refused.returncode == 1 and "REMEDIATE_TOP_K='0'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_yaml_file_feeds_every_command(tmp_path: Path) -> None:
    config = tmp_path / "remediate.yaml"
    config.write_text("top_k: 5\nrequester: U0BOT\ntopology: ''\n", encoding="utf-8")
    done = _cli(tmp_path, "--config", str(config), "config", "show", "--json")
    assert done.returncode == 0, done.stderr
    assert '"top_k": 5' in done.stdout and '"requester": "U0BOT"' in done.stdout
    assert '"topology": null' in done.stdout

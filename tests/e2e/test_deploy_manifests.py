"""deploy/: the Kustomize base and its PostgreSQL overlay rendered by the real kubectl, the compose file's
wiring (checked by promtool and amtool), and the image's defaults (docs/operations.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings
from remediation.guardrails.config import load_rbac
from tests.remediation.executors.test_kubectl_templates import kubectl_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl_binary(), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def _names(docs: list[dict[str, Any]], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


def _check_pod(docs: list[dict[str, Any]], pod: dict[str, Any]) -> dict[str, Any]:
    """Every name a pod refers to exists in the rendering; it runs as a numeric non-root user."""
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 1000
    [container] = pod["containers"]
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        assert ref["name"] in _names(docs, kind)
    for env in container.get("env", []):
        assert env["valueFrom"]["secretKeyRef"]["name"] in _names(docs, "Secret")
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            assert volume["configMap"]["name"] in _names(docs, "ConfigMap")
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in _names(docs, "PersistentVolumeClaim")
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    return dict(container)


def test_the_base_renders_a_deployment_with_probes_a_budget_rbac_and_a_train_cronjob() -> None:
    docs = _render(DEPLOY / "kubernetes")
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "Role", "RoleBinding",
                     "Secret", "ConfigMap", "CronJob", "PersistentVolumeClaim"}  # fmt: skip
    deployment = _one(docs, "Deployment", "remediate")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    container = _check_pod(docs, pod)
    assert container["args"] == ["serve"]
    ports = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"} and "http" in ports
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget", "Service"):
        spec = _one(docs, kind)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), kind  # both find the bot's pods
    account = _one(docs, "ServiceAccount")["metadata"]
    assert pod["serviceAccountName"] == account["name"]
    binding = _one(docs, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert binding["roleRef"]["name"] == _one(docs, "Role")["metadata"]["name"]
    cron = _one(docs, "CronJob", "remediate-train")
    train = _check_pod(docs, cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    assert train["args"][0] == "train" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert "--from-store" in train["args"]


def test_the_configmap_holds_settings_and_rbac_the_bot_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _render(DEPLOY / "kubernetes")
    settings = _one(docs, "ConfigMap", "remediate-settings")["data"]
    for key, value in settings.items():
        if key != "REMEDIATE_HOST":  # read by `serve --host`, not a setting
            monkeypatch.setenv(key, value)
    loaded = Settings()
    assert loaded.executor == "kubernetes" and loaded.jobs_schedule["retrain"] == ""  # the CronJob retrains
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(_one(docs, "ConfigMap", "remediate-rbac")["data"]["rbac.yaml"], encoding="utf-8")
    load_rbac(rbac)
    assert settings["REMEDIATE_RBAC_CONFIG"].endswith("/rbac.yaml")
    tokens = _one(docs, "Secret", "remediate-tokens")["stringData"]
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REMEDIATE_ALERTS_TOKEN"} <= set(tokens)


def test_the_postgresql_overlay_sets_the_store_url() -> None:
    base = _one(_render(DEPLOY / "kubernetes"), "Secret", "remediate-database")["stringData"]["url"]
    overlay = _render(DEPLOY / "overlays" / "postgresql")
    url = _one(overlay, "Secret", "remediate-database")["stringData"]["url"]
    assert url != base and url.startswith("postgresql+psycopg://")
    assert _one(overlay, "Deployment")["spec"]["replicas"] >= 2


def test_compose_wires_the_bot_postgresql_prometheus_and_alertmanager(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"bot", "bot-2", "postgres", "prometheus", "alertmanager"} <= set(services)
    env = services["bot"]["environment"]
    assert "@postgres:5432/" in env["REMEDIATE_DATABASE_URL"] and services["bot-2"]["environment"] == env
    assert services["bot"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounts = {m.split(":")[1]: DEPLOY / m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert all(source.is_file() for source in mounts.values()), mounts
    prometheus = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
    assert set(prometheus["rule_files"]) <= set(mounts)  # the shipped rules, mounted where they are read
    [scrape] = prometheus["scrape_configs"]
    assert scrape["authorization"]["credentials"] == env["REMEDIATE_METRICS_TOKEN"]
    am_source = DEPLOY / services["alertmanager"]["volumes"][0].split(":")[0]
    alertmanager = yaml.safe_load(am_source.read_text(encoding="utf-8"))
    [hook] = alertmanager["receivers"][0]["webhook_configs"]
    assert hook["url"] == "http://bot:3000/alerts/alertmanager" and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["credentials"] == env["REMEDIATE_ALERTS_TOKEN"]
    _promtool_and_amtool(tmp_path, mounts, am_source)


def _promtool_and_amtool(tmp_path: Path, mounts: dict[str, Path], am_source: Path) -> None:
    """Check both configs with the real tools (rule paths moved to where this machine has them)."""
    if shutil.which("promtool") is None or shutil.which("amtool") is None:
        pytest.fail("promtool/amtool missing: run `sudo bash deploy/ci/install-system-deps.sh`")
    text = mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8")
    for inside, source in mounts.items():
        text = text.replace(inside, str(source))
    (tmp_path / "prometheus.yml").write_text(text, encoding="utf-8")
    for command in (["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                    ["amtool", "check-config", str(am_source)]):  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def test_the_image_serves_on_every_interface_as_a_numeric_user_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    assert "ENV REMEDIATE_HOST=0.0.0.0 REMEDIATE_DATA_DIR=/data" in lines
    assert lines[-1] == 'CMD ["serve"]' and 'ENTRYPOINT ["remediate"]' in lines
    [user] = [line for line in lines if line.startswith("USER ")]
    assert all(part.isdigit() and int(part) > 0 for part in user.split()[1].split(":"))
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert any("IncidentEnv" in line for line in lines)  # the numba kernels compiled at build
    help_text = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve", "--help"],
        capture_output=True, text=True, timeout=120, check=True, env={**os.environ, "COLUMNS": "200"},
    ).stdout  # fmt: skip
    assert "REMEDIATE_HOST" in help_text  # serve reads the image's REMEDIATE_HOST

"""The alert vocabulary: the built-in file loads and maps real alert names; bad files are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import VocabularyError
from playbooks.vocabulary import load_vocabulary
from sim.observation import ALERTS

BUILT_IN = load_vocabulary(ALERTS)


@pytest.mark.parametrize(
    ("name", "labels", "signal"),
    [
        ("KubePodCrashLooping", {}, "ServiceDown"),
        ("KubeDeploymentReplicasMismatch", {}, "ServiceDown"),
        ("KubeContainerWaiting", {"reason": "CrashLoopBackOff"}, "ServiceDown"),
        ("KubeContainerWaiting", {"reason": "ContainerCreating"}, None),
        ("KubeContainerTerminated", {"reason": "OOMKilled"}, "HighMemory"),
        ("CPUThrottlingHigh", {}, "HighCPU"),
        ("TargetDown", {}, "ServiceDown"),
        ("KubePersistentVolumeFillingUp", {}, "DiskFull"),
        ("IstioHigh5xxErrorRate", {}, "HighErrorRate"),
        ("IstioLatency99Percentile", {}, "HighLatency"),
        ("LinkerdHighErrorRate", {}, "HighErrorRate"),
        ("ProbeFailed", {}, "ServiceDown"),
        ("NodeFilesystemAlmostOutOfSpace", {}, "DiskFull"),
        ("CertManagerCertExpirySoon", {}, "CertificateExpired"),
        ("[FIRING:1] High CPU usage on checkout", {}, "HighCPU"),  # a PagerDuty title from Alertmanager
        ("Checkout 5xx error rate above 5%", {}, "HighErrorRate"),  # a Grafana rule title
        ("TLS certificate of api.example.com expires in 7 days", {}, "CertificateExpired"),
        ("HighErrorRate", {}, "HighErrorRate"),  # the policy's own signal names map to themselves
        ("KubeJobFailed", {}, None),
        ("Watchdog", {}, None),
    ],
)
def test_the_built_in_vocabulary_maps_real_alerts(
    name: str, labels: dict[str, str], signal: str | None
) -> None:
    assert BUILT_IN.signal_of(name, labels) == signal


def test_monitoring_components_are_named_and_release_prefixes_match() -> None:
    for value in (
        "kube-state-metrics",
        "kubelet",
        "node-exporter",
        "cadvisor",
        "blackbox-exporter",
        "prometheus",
    ):
        assert BUILT_IN.monitoring_component(value), value
    assert BUILT_IN.monitoring_component("kube-prometheus-stack-kube-state-metrics")
    assert BUILT_IN.monitoring_component("Kube-State-Metrics")
    assert not BUILT_IN.monitoring_component("carts")
    assert not BUILT_IN.monitoring_component("checkoutservice")


BAD_FILES = [
    (
        "rules: [{alert: X, signal: HighCpu}]",
        "rules.0.signal: unknown signal 'HighCpu'; the policy reads HighErrorRate",
    ),
    (
        "rules: [{pattern: '(unclosed', signal: HighCPU}]",
        "rules.0.pattern: Value error, not a valid regular expression",
    ),
    (
        "rules: [{signal: HighCPU}]",
        "rules.0: Value error, a rule needs at least one of alert, pattern or labels",
    ),
    ("rules: [{alert: X, pattern: x, signal: HighCPU}]", "either exactly (alert) or by pattern, not both"),
    ("rules: [{alert: X, signals: HighCPU}]", "rules.0.signals: Extra inputs are not permitted"),
    ("rules: [{labels: {reason: []}, signal: HighMemory}]", "each label condition needs at least one value"),
    ("version: 2", "version: Input should be 1"),
    ("rules: {alert: X}", "rules: Input should be a valid list"),
    ("rules: [alert: X\n  - signal", "not valid YAML (line"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_vocabulary_file_is_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(VocabularyError) as caught:
        load_vocabulary(ALERTS, path)
    assert str(caught.value).startswith(str(path) + ": "), caught.value
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_vocabulary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="cannot read"):
        load_vocabulary(ALERTS, tmp_path / "absent.yaml")

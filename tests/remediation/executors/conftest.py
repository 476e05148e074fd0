"""Fixtures of the executor tests: the test Kubernetes API server (HTTPS, its own CA) and its kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remediation.executors.kubeapi import KubeApiServer, make_certs


@pytest.fixture(scope="session")
def kube_certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made once per session with openssl."""
    return make_certs(tmp_path_factory.mktemp("kube-certs"))


@pytest.fixture
def kube_api(kube_certs: tuple[Path, Path, Path]) -> Iterator[KubeApiServer]:
    """A fresh test API server (empty store) for one test."""
    api = KubeApiServer(kube_certs)
    yield api
    api.close()


@pytest.fixture
def kubeconfig(kube_api: KubeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig (context ``test``, namespace ``shop``) pointing at the test API server with its CA."""
    return kube_api.kubeconfig(tmp_path / "kubeconfig", namespace="shop")

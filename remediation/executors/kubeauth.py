"""Credentials for the Kubernetes executor, through the official client's own loaders.

Order: an explicit kubeconfig path (and optional context); else the pod's service account when the
process runs in a pod (``KUBERNETES_SERVICE_HOST`` is set); else the default kubeconfig (``$KUBECONFIG``
or ``~/.kube/config``). The CA bundle the source names is used (kubeconfig ``certificate-authority`` /
``-data``, the service account's ``ca.crt``); a kubeconfig that turns TLS checks off is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from remediation.errors import KubeConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def load_client(
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> tuple[k8s.ApiClient, str]:
    """Return an API client and a one-line description of where its credentials came from."""
    env = os.environ if environ is None else environ
    config = k8s.Configuration()
    if kubeconfig is None and context is None and env.get("KUBERNETES_SERVICE_HOST"):
        loader = incluster_config.InClusterConfigLoader(
            token_filename=str(service_account_dir / "token"),
            cert_filename=str(service_account_dir / "ca.crt"),
            environ=env,
        )
        try:
            loader.load_and_set(config)
        except ConfigException as exc:
            raise KubeConfigError(
                f"in-cluster service account at {service_account_dir} is unusable: {exc}"
            ) from None
        return k8s.ApiClient(config), f"in-cluster service account ({config.host})"
    path = kubeconfig or Path(env.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config")
    path = path.expanduser()
    _load_kubeconfig(path, context, config)
    return k8s.ApiClient(config), f"kubeconfig {path} context {context or '(current)'} ({config.host})"


def _load_kubeconfig(path: Path, context: str | None, config: k8s.Configuration) -> None:
    """Fill ``config`` from the kubeconfig file; every failure becomes one KubeConfigError line."""
    if not path.is_file():
        raise KubeConfigError(
            f"kubeconfig {path} does not exist (set REMEDIATE_KUBECONFIG to a readable file)"
        )
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=str(path))
    except Exception as exc:  # ConfigException, yaml's errors, a list where a mapping belongs ...
        raise KubeConfigError(f"kubeconfig {path} is not a valid kubeconfig: {_one_line(exc)}") from None
    names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
    if context is not None and context not in names:
        raise KubeConfigError(
            f"context {context!r} is not in kubeconfig {path} (it has: {', '.join(names) or 'none'})"
        )
    if context is None and not current:
        raise KubeConfigError(f"kubeconfig {path} has no current-context; set REMEDIATE_KUBE_CONTEXT")
    try:
        kube_config.load_kube_config(
            config_file=str(path), context=context, client_configuration=config, persist_config=False
        )
    except (ConfigException, ValueError, TypeError, KeyError, OSError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: {_one_line(exc)}") from None
    if not config.verify_ssl:
        raise KubeConfigError(
            f"kubeconfig {path} turns TLS checks off (insecure-skip-tls-verify); "
            "give the cluster's CA (certificate-authority) instead"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

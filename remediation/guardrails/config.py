"""Load the guardrails YAML (the shipped example unless a path is given)."""

from __future__ import annotations

from pathlib import Path

from playbooks.yamlfiles import load_yaml_model
from remediation.errors import RemediationError
from remediation.guardrails.models import RbacConfig

DEFAULT_RBAC = Path(__file__).parent / "default_rbac.yaml"


class GuardrailConfigError(RemediationError):
    """The guardrails YAML is unreadable or invalid; the message names the file and key."""


def load_rbac(path: Path | None = None) -> RbacConfig:
    """Parse and validate the guardrails config at ``path`` (the shipped example when None)."""
    return load_yaml_model(path or DEFAULT_RBAC, RbacConfig, GuardrailConfigError)

"""Load the guardrails YAML (the shipped example unless a path is given)."""

from __future__ import annotations

from pathlib import Path

from playbooks.yamlfiles import load_yaml_model
from remediation.errors import GuardrailConfigError
from remediation.guardrails.models import RbacConfig

DEFAULT_RBAC = Path(__file__).parent / "default_rbac.yaml"


def load_rbac(path: Path | None = None) -> RbacConfig:
    """Parse and validate the guardrails config at ``path`` (the shipped example when None)."""
    return load_yaml_model(path or DEFAULT_RBAC, RbacConfig, GuardrailConfigError)

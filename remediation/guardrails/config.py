"""Load the guardrails YAML (the shipped example unless a path is given)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from remediation.errors import RemediationError
from remediation.guardrails.models import RbacConfig

DEFAULT_RBAC = Path(__file__).parent / "default_rbac.yaml"


class GuardrailConfigError(RemediationError):
    """The guardrails YAML is unreadable or invalid; the message names the file and key."""


def load_rbac(path: Path | None = None) -> RbacConfig:
    """Parse and validate the guardrails config at ``path`` (the shipped example when None)."""
    source = path or DEFAULT_RBAC
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GuardrailConfigError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise GuardrailConfigError(f"{source}: not valid YAML ({exc})") from None
    try:
        return RbacConfig.model_validate(raw)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise GuardrailConfigError(f"{source}: " + "; ".join(parts)) from None

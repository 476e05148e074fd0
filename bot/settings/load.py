"""Building the settings: the YAML file, the environment and command-line overrides, refusals that name the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.errors import SettingsError
from bot.settings.model import _YAML_VALUES, Settings
from incidents_db.redact import redact_text, redact_url
from playbooks.yamlfiles import key_text, read_yaml


def _env_name(field: str) -> str:
    if field.startswith(("slack_", "otel_")):
        return field.upper()
    return f"REMEDIATE_{field.upper()}"


def _masked(field: str, value: Any) -> Any:
    """Return a refused value fit for an error message: credentials in URLs masked."""
    if not isinstance(value, str):
        return value
    return redact_url(value) if "url" in field or "webhook" in field else redact_text(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    raw = read_yaml(path, SettingsError, "config file ")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"config file {path}: expected a mapping of setting names to values")
    known = set(Settings.model_fields)
    unknown = sorted(key_text(k) for k in raw if str(k) not in known)
    if unknown:
        raise SettingsError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return {str(k): v for k, v in raw.items()}


def load_settings(
    config: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build and validate the settings; raise `SettingsError` naming the bad key, value and expectation."""
    env = os.environ
    path = config or (Path(env["REMEDIATE_CONFIG"]) if env.get("REMEDIATE_CONFIG") else None)
    file_values = _read_yaml(path) if path else {}
    token = _YAML_VALUES.set(file_values)
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        source = "the command line" if field in clean else _env_name(field)
        if field in file_values and field not in clean and _env_name(field) not in env:
            source = f"{field} in {path}"
        raise _refusal(source, field, err) from None
    finally:
        _YAML_VALUES.reset(token)


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """Return a validated copy of ``settings`` with the given (non-None) command-line values set.

    A subcommand's own flags (``serve --requester``) land here after the root built the settings; the
    environment and the YAML file are not read again.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), **clean})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise _refusal("the command line", field, err) from None


def _refusal(source: str, field: str, err: Any) -> SettingsError:
    """Return the error naming where a refused value came from, the value (masked) and what was expected."""
    value = err.get("input")
    secret = "token" in field or "secret" in field or field.endswith("_key")
    shown = "***" if secret else repr(_masked(field, value))
    return SettingsError(f"setting {source}={shown}: {err['msg']}")

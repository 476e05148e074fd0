"""The one settings object: built once at start from arguments, environment and an optional YAML file.

Precedence, highest first: explicit overrides (CLI flags) > environment (`REMEDIATE_*`, `SLACK_*`,
`OTEL_*`) > the YAML file (`--config` or `REMEDIATE_CONFIG`) > defaults. Nothing here runs at import
time. The fields live in `model.py`, the loading in `load.py`.
"""

from __future__ import annotations

from bot.errors import SettingsError
from bot.settings.load import load_settings, with_overrides
from bot.settings.model import ALERT_SERVICE_LABELS, ROUTABLE, Settings, default_data_dir

__all__ = [
    "ALERT_SERVICE_LABELS",
    "ROUTABLE",
    "Settings",
    "SettingsError",
    "default_data_dir",
    "load_settings",
    "with_overrides",
]

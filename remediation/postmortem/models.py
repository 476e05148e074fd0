"""What a postmortem draft is made of: plain values, rendered by whoever shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Draft:
    """An incident's record (`remediate.incident/v1` form) and the actions run on it, in timeline order."""

    record: dict[str, Any]
    actions: tuple[dict[str, Any], ...]

    @property
    def incident_id(self) -> str:
        """Return the incident's id as stored."""
        return str(self.record["id"])

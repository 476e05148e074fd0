"""The two most similar past incidents for a card, from the memory every policy shares (`remediation.similar`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from bot.services import Services
from remediation.similar.memory import Similar
from remediation.similar.service import add_artifact_memory, refresh
from sim.observation import Observation

SHOWN = 2
"""Similar past incidents a card names."""


def similar_past(
    services: Services, *, db_session: Session, record: Mapping[str, Any], observation: Observation
) -> tuple[Similar, ...]:
    """Return the past incidents most like this one: the store's newly resolved ones join first (no retraining)."""
    memory = services.similar
    trained_on = getattr(services.policy, "memory", None)  # a learned policy's simulated incidents
    if trained_on is not None:
        add_artifact_memory(memory, trained_on, version=services.policy.version)
    refresh(
        memory, db_session=db_session, topology=services.topology, signal_of=services.vocabulary.signal_of
    )
    return tuple(memory.nearest(observation, SHOWN, exclude=str(record["id"])))

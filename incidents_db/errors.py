"""Errors raised by the incident store: one root, a small flat tree."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error the incident store raises on purpose; its message is meant for a person."""


class MiningError(StoreError):
    """Mining could not write its dataset or read its state."""


class IncidentNotFoundError(StoreError):
    """No incident with that id is in the store; ``incident_id`` is the id asked for."""

    def __init__(self, message: str, *, incident_id: str) -> None:
        super().__init__(message)
        self.incident_id = incident_id


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or opened; the message says which URL and why."""


class StoreInUseError(StoreError):
    """A SQLite store already has its serving process; a second one is refused."""


class SchemaError(StoreError):
    """The database schema is missing, too new, or a migration failed."""


class NaiveTimestampError(StoreError):
    """A timestamp without a zone reached the store; remediate stores only zone-aware UTC times."""


class MappingError(StoreError):
    """A history source cannot be read as asked (a bad mapping file, an unknown column, an unreadable export)."""

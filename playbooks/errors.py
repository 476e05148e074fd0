"""Errors raised by the action catalog and runbooks: one root, a small flat tree."""

from __future__ import annotations


class PlaybookError(Exception):
    """Root of every error the action catalog and runbooks raises on purpose; its message is meant for a person."""


class CatalogError(PlaybookError):
    """An actions file is unreadable or breaks the schema; the message names the file and key."""


class UnknownActionError(PlaybookError):
    """An action id is not in the catalog."""


class RunbookError(CatalogError):
    """A runbooks file is unreadable or breaks the schema; the message names the file and key."""


class VocabularyError(PlaybookError):
    """An alert vocabulary file is unreadable or breaks the schema; the message names the file and key."""

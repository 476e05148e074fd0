"""Errors raised by the action catalog and runbooks: one root, a small flat tree."""

from __future__ import annotations


class PlaybookError(Exception):
    """Root of every error the action catalog and runbooks raises on purpose; its message is meant for a person."""

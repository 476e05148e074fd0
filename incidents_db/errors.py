"""Errors raised by the incident store: one root, a small flat tree."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error the incident store raises on purpose; its message is meant for a person."""

"""Errors raised by the simulator: one root, a small flat tree."""

from __future__ import annotations


class SimError(Exception):
    """Root of every error the simulator raises on purpose; its message is meant for a person."""

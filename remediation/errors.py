"""Errors raised by deciding and acting safely: one root, a small flat tree."""

from __future__ import annotations


class RemediationError(Exception):
    """Root of every error deciding and acting safely raises on purpose; its message is meant for a person."""

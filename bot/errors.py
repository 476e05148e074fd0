"""Errors raised by the application layer: one root, a small flat tree."""

from __future__ import annotations


class BotError(Exception):
    """Root of every error the application layer raises on purpose; its message is meant for a person."""


class SettingsError(BotError):
    """A setting has a value remediate cannot use; the message names the key and what was expected."""

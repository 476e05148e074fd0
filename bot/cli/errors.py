"""Errors of the command line."""

from __future__ import annotations

from bot.errors import BotError


class Refused(BotError):
    """The command refused its input; the message says what was wrong and how to fix it."""

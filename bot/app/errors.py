"""Errors of the Slack app: refusals a person can act on, shown as ephemeral replies."""

from __future__ import annotations

from bot.errors import BotError


class AppError(BotError):
    """Root of the Slack app's refusals; the message is shown to the person as is."""


class UsageError(AppError):
    """The command text does not parse; the message is the short help for it."""


class NotFoundError(AppError):
    """The incident, request or service named does not exist."""


class NotAllowedError(AppError):
    """The person has no role that allows this; the message names what would."""


class SocketModeError(BotError):
    """Slack refused the Socket Mode connection, or could not be reached; the message says which."""

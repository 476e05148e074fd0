"""Errors of the Slack app: refusals a person can act on (ephemeral replies)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.errors import BotError
from bot.notify.mrkdwn import safe
from incidents_db.errors import IncidentNotFoundError


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


@contextmanager
def incident_named() -> Iterator[None]:
    """Turn the store's unknown-incident error into the chat's refusal (the id escaped, how to list ids)."""
    try:
        yield
    except IncidentNotFoundError as exc:
        raise NotFoundError(
            f"no incident {safe(repr(exc.incident_id), 200)}; `/remediate incidents` lists the open ones"
        ) from None

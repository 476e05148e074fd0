"""Errors of alert intake: each maps to an HTTP status with a reason."""

from __future__ import annotations

from bot.errors import BotError


class AlertError(BotError):
    """Root of alert intake refusals."""

    status = 400


class BadPayloadError(AlertError):
    """The body is not JSON or not the source's payload; the message says which field is wrong."""

    status = 422


class AllRefusedError(BadPayloadError):
    """Every alert (or snapshot) of a delivery was refused; ``refused`` says why, one entry each."""

    def __init__(self, message: str, refused: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.refused = refused


class UnauthorizedError(AlertError):
    """The request carries no valid bearer token or signature."""

    status = 401

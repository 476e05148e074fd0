"""Errors of the local Slack sandbox, under the application's root error."""

from __future__ import annotations

from typing import Any

from bot.errors import BotError


class SandboxError(BotError):
    """The sandbox cannot do what was asked; the message says what to change."""


class WorkspaceConfigError(SandboxError):
    """A workspace file for the sandbox is malformed; the message names the bad entry."""


class DeliveryError(SandboxError):
    """The driver cannot build a delivery (unknown user, channel, message or button)."""


class ApiError(Exception):
    """A Web API call fails the way Slack fails it: `{"ok": false, "error": NAME}` (internal signal)."""

    def __init__(self, error: str, *, status: int = 200, extra: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}


class ProtocolError(Exception):
    """A Socket Mode client broke RFC 6455; the link is closed with `code` (internal signal)."""

    def __init__(self, message: str, code: int = 1002) -> None:  # 1002: RFC 6455 "protocol error"
        super().__init__(message)
        self.code = code

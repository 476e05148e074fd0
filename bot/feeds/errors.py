"""Errors of the feeds that read the team's monitoring (Prometheus)."""

from __future__ import annotations

from bot.errors import BotError


class FeedError(BotError):
    """The queries file or an option is wrong; the message says which and how to fix it."""


class DiscoveryError(BotError):
    """Service-graph discovery failed or found nothing; the message says where it looked and what to check."""

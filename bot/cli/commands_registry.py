"""The one list of subcommand modules; add a line here when a capability adds commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount every subcommand group on the root app."""
    from bot.cli import config_cmd, sandbox_cmd

    config_cmd.register(app)
    sandbox_cmd.register(app)

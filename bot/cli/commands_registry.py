"""The one list of subcommand modules; add a line here when a capability adds commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount every subcommand group on the root app."""
    from bot.cli import config_cmd, sandbox_cmd
    from bot.cli import demo_cmd, store_cmds

    config_cmd.register(app)
    sandbox_cmd.register(app)
    store_cmds.register(app)
    demo_cmd.register(app)
    from bot.cli import safety_cmds

    safety_cmds.register(app)

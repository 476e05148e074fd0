"""`remediate config show`: print the effective settings (secrets and credentials in URLs masked)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import console, print_json, settings_of
from incidents_db.redact import redact_url


def register(app: typer.Typer) -> None:
    """Mount the `config` group."""
    group = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)

    @group.command("show")
    def show(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Show every setting with its effective value (secrets masked)."""
        settings = settings_of(ctx)
        values = {k: v for k, v in settings.model_dump(mode="json").items()}
        values["database_url"] = settings.effective_database_url
        for key, value in values.items():
            if value is not None and ("token" in key or "secret" in key or key.endswith("_key")):
                values[key] = "***"
            elif isinstance(value, str) and ("url" in key or "webhook" in key or "://" in value):
                values[key] = redact_url(value)  # a password in a database or webhook URL
        if as_json:
            print_json(values)
            return
        table = Table("setting", "value", title="remediate settings")
        for key, value in values.items():
            table.add_row(key, str(value))
        console.print(table)

    app.add_typer(group, name="config")

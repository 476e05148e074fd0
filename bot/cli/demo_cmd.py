"""`remediate demo`: import the shipped sample history into the default store and mine it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from bot.cli.common import console, settings_of
from bot.cli.store_cmds import import_file, mine_store, print_mining
from incidents_db import db

SAMPLE = "sample_history.jsonl"


def sample_path() -> Path:
    """Return the path of the sample history shipped inside `incidents_db.samples`."""
    return Path(str(resources.files("incidents_db.samples").joinpath(SAMPLE)))


def register(app: typer.Typer) -> None:
    """Mount `demo`."""

    @app.command("demo")
    def demo(ctx: typer.Context) -> None:
        """Import the sample history (idempotent), mine it into trajectories and say what happened."""
        settings = settings_of(ctx)
        url = settings.effective_database_url
        console.print(f"[bold]remediate demo[/] store: {db.redact(url)}", highlight=False)
        revision = db.upgrade(url)
        console.print(f"1. schema at revision {revision}")
        console.print(f"2. importing the sample history {sample_path()}", highlight=False)
        code = import_file(ctx, str(sample_path()), as_json=False, log_commits=False, batch_size=500)
        if code != 0:
            raise typer.Exit(code)
        console.print("3. mining resolved incidents into trajectories (incremental)")
        print_mining(mine_store(ctx, None, full=False, as_json=False))
        console.print(
            "next: `remediate incidents list`, `remediate incidents show INC-1001`, `remediate mine --full`"
        )

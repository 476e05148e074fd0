"""`remediate demo`: import the sample history, mine it, then run the live demo (bot/cli/demo_live.py)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import console, settings_of, state
from bot.cli.store_cmds import import_file, mine_store, print_mining
from bot.demo.home import demo_home
from incidents_db import db
from incidents_db.redact import redact_url

SAMPLE = "sample_history.jsonl"


def sample_path() -> Path:
    """Return the path of the sample history shipped inside `incidents_db.samples`."""
    return Path(str(resources.files("incidents_db.samples").joinpath(SAMPLE)))


def prepare_demo_store(ctx: typer.Context, *, store: str | None, reset: bool) -> str:
    """Point the CLI at the demo's own data directory, migrate its store, import and mine the sample history."""
    home = demo_home(settings_of(ctx), store=store, reset=reset)
    state(ctx).use(home.settings)  # every step below reads the demo's settings, never the default store
    url = home.settings.effective_database_url
    console.print(f"[bold]remediate demo[/] data directory: {home.directory}", highlight=False)
    where = " (the demo's own; `remediate demo --reset` starts afresh)" if home.own_store else " (--store)"
    console.print(f"store: {redact_url(url)}{where}", highlight=False)
    revision = db.upgrade(url)
    console.print(f"1. schema at revision {revision}")
    console.print(f"2. importing the sample history {sample_path()}", highlight=False)
    code = import_file(ctx, str(sample_path()), as_json=False, log_commits=False, batch_size=500)
    if code != 0:
        raise typer.Exit(code)
    console.print("3. mining resolved incidents into trajectories (incremental)")
    print_mining(mine_store(ctx, None, full=False, as_json=False))
    return url


def register(app: typer.Typer) -> None:
    """Mount `demo`."""

    @app.command("demo")
    def demo(
        ctx: typer.Context,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="Start sandbox, bot and live world after setup.")
        ] = True,
        minutes: Annotated[
            float | None, typer.Option("--minutes", min=0.01, help="Stop the live demo after this long.")
        ] = None,
        topology: Annotated[
            str, typer.Option("--topology", help="Topology of the live world.")
        ] = "online-boutique",
        port: Annotated[
            int, typer.Option("--port", min=0, max=65535, help="Bot port (0: a free one).")
        ] = 3000,
        sandbox_port: Annotated[
            int, typer.Option("--sandbox-port", min=0, max=65535, help="Sandbox page port (0: free).")
        ] = 3001,
        fault_every: Annotated[
            float, typer.Option("--fault-every", min=0, help="Seconds between faults.")
        ] = 60.0,
        first_fault: Annotated[
            float, typer.Option("--first-fault", min=0, help="Seconds to the first fault.")
        ] = 5.0,
        tick: Annotated[
            float, typer.Option("--tick", min=0.05, help="Real seconds per simulated minute.")
        ] = 5.0,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of history and world.")] = 0,
        history_incidents: Annotated[
            int, typer.Option("--history-incidents", min=0, help="Simulated incidents to import first.")
        ] = 200,
        train_minutes: Annotated[
            float | None,
            typer.Option("--train-minutes", min=0.05, help="Train a quick policy (else runbook)."),
        ] = None,
        store: Annotated[
            str | None,
            typer.Option(
                "--store", help="Store URL for the demo's incidents (default: its own SQLite file)."
            ),
        ] = None,
        reset: Annotated[
            bool, typer.Option("--reset", help="Delete the demo's data directory first and start afresh.")
        ] = False,
    ) -> None:
        """Import and mine history, then serve the sandbox, the bot and a live simulated world until Ctrl-C."""
        from bot.cli.demo_live import LiveDemoArgs, live_demo

        url = prepare_demo_store(ctx, store=store, reset=reset)
        live = LiveDemoArgs(serve=serve, minutes=minutes, topology=topology, port=port, sandbox_port=sandbox_port,
                            fault_every_s=fault_every, first_fault_s=first_fault, tick_s=tick, seed=seed,
                            history_incidents=history_incidents, train_minutes=train_minutes)  # fmt: skip
        live_demo(ctx, live)
        if not serve:
            console.print(
                f"next (on the demo's store): `remediate --database-url {redact_url(url)} incidents list`",
                highlight=False,
                soft_wrap=True,
            )

"""`remediate snapshots feed`: push metric snapshots from Prometheus to the bot's `POST /snapshots`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import console, err_console, print_json, settings_of
from bot.feeds.prometheus import PrometheusFeed, load_queries

BUILTIN_QUERIES = Path(__file__).resolve().parents[1] / "feeds" / "snapshot-queries.yaml"


def register(app: typer.Typer) -> None:
    """Mount the `snapshots` group."""
    group = typer.Typer(help="Metric snapshots for the ranking (docs/alerts.md).", no_args_is_help=True)

    @group.command("feed")
    def feed(
        ctx: typer.Context,
        prometheus: Annotated[
            str,
            typer.Option(
                "--prometheus", envvar="REMEDIATE_PROMETHEUS_URL", help="Base URL of the Prometheus API."
            ),
        ] = "http://127.0.0.1:9090",
        bot: Annotated[
            str, typer.Option("--bot", envvar="REMEDIATE_BOT_URL", help="Base URL of `remediate serve`.")
        ] = "http://127.0.0.1:3000",
        queries: Annotated[
            Path,
            typer.Option(
                "--queries",
                help="Queries file (default: the built-in one for Kubernetes with Istio, kube-state-metrics "
                "and cAdvisor).",
            ),
        ] = BUILTIN_QUERIES,
        interval: Annotated[
            float, typer.Option("--interval", min=1.0, help="Seconds between rounds.")
        ] = 30.0,
        once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="With --once: print the round as JSON.")
        ] = False,
    ) -> None:
        """Query Prometheus every --interval seconds and post the snapshots to the bot (Ctrl-C stops).

        The bearer token is the alert intake's (REMEDIATE_ALERTS_TOKEN). A query that fails is reported
        and the others still go out; with --once the exit status is 1 when a query failed or the bot
        refused the delivery.
        """
        settings = settings_of(ctx)
        token = settings.alerts_token.get_secret_value() if settings.alerts_token else None
        spec = load_queries(queries)
        runner = PrometheusFeed(spec, prometheus=prometheus, bot=bot, token=token)
        while True:
            started = time.monotonic()
            round_ = runner.collect()
            if round_.snapshots:
                runner.send(round_)
            if once and as_json:
                print_json(round_.as_json())
            else:
                state = "delivered" if round_.delivered else "not delivered"
                console.print(
                    f"{round_.at:%H:%M:%S} {len(round_.snapshots)} service snapshot(s) {state}; "
                    f"{len(round_.failed)} query(ies) failed",
                    highlight=False,
                )
                for failure in round_.failed:
                    err_console.print(
                        f"  {failure['query']}: {failure['error']}", highlight=False, markup=False
                    )
                for answer in round_.answers:
                    if not answer.get("ok", False):
                        err_console.print(f"  bot: {answer.get('error')}", highlight=False, markup=False)
            if once:
                ok = not round_.failed and (round_.delivered or not round_.snapshots)
                raise typer.Exit(0 if ok else 1)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    app.add_typer(group, name="snapshots")

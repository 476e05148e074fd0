"""`remediate executors check`: dry-run each configured executor against a harmless target.

Exit status 0 when every configured executor would run (or the bot is advisory only), 1 when one of
them is refused or its dry run failed; the table (or ``--json``) says which and why.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import console, err_console, print_json, settings_of

BAD = ("refused", "failed", "unknown")


def register(app: typer.Typer) -> None:
    """Mount the `executors` group."""
    group = typer.Typer(help="Check the executors that run approved actions.", no_args_is_help=True)

    @group.command("check")
    def check(
        ctx: typer.Context,
        target: Annotated[
            str,
            typer.Option("--target", help="Service the dry runs aim at (nothing is changed)."),
        ] = "remediate-executors-check",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Build every configured executor as `serve` would and show what a dry run of one action would do."""
        from bot.services import executor_config
        from playbooks.catalog import load_catalog
        from remediation.executors.check import check_executors

        settings = settings_of(ctx)
        catalog = load_catalog([settings.playbooks_dir] if settings.playbooks_dir else [])
        rows = check_executors(executor_config(settings), catalog, target=target)
        bad = [row for row in rows if row.status in BAD]
        if as_json:
            print_json({"ok": not bad, "executor": settings.executor, "checks": [r.as_dict() for r in rows]})
        else:
            table = Table("executor", "used for", "dry run", "status", "what would happen", title="executors")
            for row in rows:
                aim = f"{row.action} on {row.target}" if row.target else row.action
                table.add_row(row.executor, row.used_for, aim, row.status, row.detail)
            console.print(table)
        if bad:
            if not as_json:
                err_console.print(
                    f"error: {', '.join(r.executor for r in bad)} cannot run actions (see above)"
                )
            raise typer.Exit(1)

    app.add_typer(group, name="executors")

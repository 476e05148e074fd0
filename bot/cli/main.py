"""The `remediate` command: a root Typer app that mounts each capability's subcommands.

Exit status: 0 success, 1 input refused (one-line message, no traceback), 2 usage error.
"""

from __future__ import annotations

import sys
import traceback
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bot.cli.common import CliState, err_console
from bot.errors import BotError
from bot.settings import default_data_dir
from incidents_db.errors import StoreError
from incidents_db.redact import redact_text
from playbooks.errors import PlaybookError
from remediation.errors import RemediationError
from sim.errors import SimError

app = typer.Typer(
    name="remediate",
    help="Incident-remediation ChatOps bot: ranked, guarded, audited remediation for SRE teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The root callback's state, so the crash handler in `main` logs where the settings say (None before it ran).
_STATE: CliState | None = None

USER_ERRORS: tuple[type[Exception], ...] = (BotError, StoreError, PlaybookError, RemediationError, SimError)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="REMEDIATE_CONFIG", help="YAML settings file.", show_default=False),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="Store URL (overrides REMEDIATE_DATABASE_URL).", show_default=False
        ),
    ] = None,
) -> None:
    """Incident-remediation ChatOps bot: ranked, guarded, audited remediation for SRE teams."""
    global _STATE
    _STATE = ctx.obj = CliState(config=config, overrides={"database_url": database_url})
    _STATE.build()


def _mount() -> None:
    """Attach every subcommand module once; each one registers itself on `app`."""
    if app.registered_commands or app.registered_groups:
        return  # already mounted: `main()` called again in one process (tests run it in-process)
    # Imported here so `remediate --help` stays cheap and a broken optional part names itself.
    from bot.cli import commands_registry

    commands_registry.register(app)


def main() -> None:
    """Console entry point: run the app and turn known errors into one-line messages."""
    _mount()
    try:
        app(standalone_mode=True)
    except USER_ERRORS as exc:
        # escaped: a message's own brackets (remediate[ray], a path) are text, not Rich markup
        err_console.print(
            f"[bold red]error:[/] {escape(redact_text(str(exc)))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except OSError as exc:  # a file or socket the user named: say which and why, no trace
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] {escape(where)}{escape(redact_text(str(exc.strerror or exc)))}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except Exception as exc:  # a bug of ours: keep the trace out of the user's face, but keep it
        trace_id = uuid.uuid4().hex[:12]
        settings = _STATE.built() if _STATE is not None else None
        saved = _save_trace(trace_id, settings.data_dir if settings else default_data_dir())
        err_console.print(
            f"[bold red]internal error[/] ({type(exc).__name__}: {redact_text(str(exc))}); trace id {trace_id}"
            + (f", trace in {saved}" if saved else "")
            + ". Please report it.",
            highlight=False,
            soft_wrap=True,
        )
        if settings is not None and settings.log_level == "DEBUG":
            traceback.print_exc()
        sys.exit(70)


def _save_trace(trace_id: str, data_dir: Path) -> Path | None:
    """Append the current exception's trace to the error log in the data directory; return its path."""
    try:
        directory = data_dir / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "errors.log"
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- trace id {trace_id}\n{traceback.format_exc()}\n")
        return path
    except OSError:
        return None


if __name__ == "__main__":
    main()

"""`--ray [ADDRESS]` and `--workers N`, shared by `train` and `eval`: work spread over a Ray cluster."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import refuse

RayFlag = Annotated[
    bool,
    typer.Option(
        "--ray", help="Run the simulator on Ray workers: the cluster at ADDRESS, or a local 2-CPU one."
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Argument(
        metavar="[ADDRESS]",
        help="Ray cluster of --ray (ray://HEAD:10001, HEAD:6379 or auto).",
        show_default=False,
    ),
]
RayWorkers = Annotated[
    int, typer.Option("--workers", min=1, help="Ray workers with --ray (each plays a share).")
]


def check_address(command: str, ray: bool, address: str | None) -> None:
    """Refuse an ADDRESS given without --ray (it would be silently ignored)."""
    if address is not None and not ray:
        refuse(f"{address}: a Ray cluster address goes with --ray (remediate {command} --ray {address})")

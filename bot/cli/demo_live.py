"""The live part of `remediate demo`, after the sample history is imported and mined.

`live_demo` generates simulated history on the demo's topology (what `remediate sim history`
writes), imports and mines it, trains a quick policy when a time budget is given (else the runbook
baseline ranks), then serves the sandbox, the bot and the live world until Ctrl-C or the time limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import typer

from bot.cli.common import console, progress_bar, settings_of
from bot.cli.store_cmds import import_file, mine_store, print_mining
from bot.demo.setup import train_quick_policy, write_sim_history
from bot.demo.stack import DemoOptions, DemoStack, run_demo
from bot.demo.world import WorldOptions
from bot.settings import with_overrides
from incidents_db import db
from incidents_db.redact import log_to_stderr
from remediation.policies import Policy


@dataclass(frozen=True)
class LiveDemoArgs:
    """What `remediate demo` was asked for beyond the sample history (see its --help)."""

    serve: bool = True
    minutes: float | None = None
    topology: str = "online-boutique"
    host: str = "127.0.0.1"
    port: int = 3000
    sandbox_port: int = 3001
    fault_every_s: float = 60.0
    first_fault_s: float = 5.0
    tick_s: float = 5.0
    seed: int = 0
    history_incidents: int = 200
    train_minutes: float | None = None


def live_demo(ctx: typer.Context, args: LiveDemoArgs, *, step: int = 4) -> None:
    """Simulated history in, a policy chosen, then (unless ``--no-serve``) the live demo until stopped."""
    settings = settings_of(ctx)
    log_to_stderr(logging.WARNING)
    if args.history_incidents > 0:
        path = settings.data_dir / f"sim-history-{args.topology}-s{args.seed}.jsonl"
        console.print(
            f"{step}. simulating {args.history_incidents} incidents on {args.topology} "
            f"(remediate sim history) -> {path}",
            highlight=False,
        )
        with progress_bar() as bar:
            task = bar.add_task("simulating", total=args.history_incidents)
            write_sim_history(
                path,
                topology=args.topology,
                incidents=args.history_incidents,
                seed=args.seed,
                on_incident=lambda: bar.advance(task),
            )
        code = import_file(ctx, str(path), as_json=False, log_commits=False, batch_size=500)
        if code != 0:
            raise typer.Exit(code)
        print_mining(mine_store(ctx, None, full=False, as_json=False))
        step += 1
    policy: Policy | None = None
    if args.train_minutes:
        console.print(
            f"{step}. training a quick policy for {args.train_minutes:g} min on the store's history"
        )
        engine = db.open_store(settings.effective_database_url)
        try:
            with progress_bar() as bar:
                tasks: dict[str, object] = {}

                def progress(phase: str, done: int, total: int, metrics: dict[str, float]) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(phase, total=total)
                    bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

                policy = train_quick_policy(
                    engine=engine,
                    data_dir=settings.data_dir,
                    store_url=settings.effective_database_url,
                    minutes=args.train_minutes,
                    seed=args.seed,
                    progress=progress,
                )
        finally:
            engine.dispose()
        console.print(f"   promoted {policy.version}; it ranks the suggestions")
    else:  # the bundled policy (promoted > bundled > runbook, as `serve --policy auto`)
        from bot.cli.serve_policy import build_live_policy

        policy = build_live_policy(None, with_overrides(settings, policy="auto"))
        console.print(
            f"{step}. ranking with the {policy.name} (give --train-minutes to train one on this history)"
        )
    if not args.serve:
        return
    world = WorldOptions(
        fault_every_s=args.fault_every_s, first_fault_s=args.first_fault_s, tick_s=args.tick_s, seed=args.seed
    )
    options = DemoOptions(
        topology=args.topology, host=args.host, port=args.port, sandbox_port=args.sandbox_port, world=world
    )
    stack = DemoStack(settings, options, policy=policy)
    run_demo(
        stack, minutes=args.minutes, say=lambda line: console.print(line, highlight=False, soft_wrap=True)
    )

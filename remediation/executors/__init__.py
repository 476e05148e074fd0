"""Executors: one interface, `execute(request, dry_run) -> Outcome`, for sim, webhook, shell and kubernetes."""

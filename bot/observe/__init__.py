"""Watching the bot itself: /metrics from the store, readiness, structured logs, the drift check."""

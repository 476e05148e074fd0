"""Watching the bot in production: live statistics from the store (M1-M10), drift and telemetry loss."""

"""Feeds that push what monitoring systems know into the bot (metric snapshots from Prometheus)."""

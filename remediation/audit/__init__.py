"""The append-only, hash-chained audit log of every guardrail decision and state change."""

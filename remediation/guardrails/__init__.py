"""Guardrails: the RBAC config, the one pure decision function and the action mask built from it."""

"""Deciding and acting safely: policies, training, evaluation, guardrails, approvals, executors."""

"""Errors raised by deciding and acting safely: one root, a small flat tree."""

from __future__ import annotations


class RemediationError(Exception):
    """Root of every error deciding and acting safely raises on purpose; its message is meant for a person."""


class ApprovalError(RemediationError):
    """An approval request cannot do what was asked; the message says why and what to do instead."""


class RequestNotFoundError(ApprovalError):
    """No approval request has this id."""


class IllegalTransitionError(ApprovalError):
    """The request's state does not allow this step (e.g. approving a request that already ran)."""


class RequestExpiredError(IllegalTransitionError):
    """The request outlived its time to live; propose the action again."""


class GuardrailDeniedError(ApprovalError):
    """The guardrails refused the step; the message is the decision's reason."""

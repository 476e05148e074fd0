"""Errors raised by deciding and acting safely: one root, a small flat tree."""

from __future__ import annotations

from typing import Literal


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


class CanaryRefusedError(ApprovalError):
    """A canary was asked for an action or target that cannot run as one."""


class GuardrailDeniedError(ApprovalError):
    """The guardrails refused the step; the message is the decision's reason."""


class AuditError(RemediationError):
    """The audit log cannot be written (its head row is missing: run the store migrations)."""


class CheckpointError(RemediationError):
    """A published audit head (``--expect-head``, ``--head-file``) cannot be read; the message says why."""


class ExecutorError(RemediationError):
    """An executor is misconfigured or was asked for something the catalog does not allow."""


class KubeConfigError(ExecutorError):
    """The Kubernetes credentials cannot be loaded (bad kubeconfig, unknown context, no service account)."""


class ExecutorConfigError(ExecutorError):
    """The configured executor cannot be built; the one-line message names the setting and the fix."""


class GuardrailConfigError(RemediationError):
    """The guardrails YAML is unreadable or invalid; the message names the file and key."""


class RegistryError(RemediationError):
    """A registry step cannot be done; the message says what to do instead."""


class ArtifactError(RemediationError):
    """A policy artifact is missing, tampered with or in an unknown format."""


class UnknownSuggestionError(ApprovalError):
    """A button points at no suggestion the bot rendered (forged, tampered or from another card)."""


class GuardrailsRefuseAllError(RemediationError):
    """The guardrails refuse every action, ``wait`` included, in a simulated incident; nothing can be trained."""


class PostmortemError(RemediationError):
    """A postmortem step was refused; the message says why and what to do."""


class PostmortemNotReadyError(PostmortemError):
    """The incident is still open, so it has no postmortem yet."""


class PostmortemNotAllowedError(PostmortemError):
    """The person may not take this review step (not a reviewer, no role that may publish)."""


class LoopError(RemediationError):
    """A learning-loop job cannot run as asked (unknown job, nothing to evaluate or promote)."""


class MembershipSourceError(RemediationError):
    """A source of group members (Slack user group, on-call schedule) cannot be read now; the last answer stays."""


class ClusterError(RemediationError):
    """Ray, which spreads rollouts and evaluation episodes over workers, is not installed or not reachable."""


class JsonGetError(RemediationError):
    """A GET for a JSON answer failed: an HTTP error status, no connection, or an answer that is not JSON."""

    def __init__(
        self,
        message: str,
        *,
        kind: Literal["http", "network", "not_json"],
        status: int | None = None,
        reason: str = "",
        error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind  # an HTTP error status, no answer at all, or an answer that is not JSON
        self.status = status  # of an error answer (kind "http")
        self.reason = reason  # the HTTP reason phrase, or why the connection failed
        self.error = error  # the ``error`` field of a JSON error answer (Prometheus' form), if any

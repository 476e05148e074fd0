"""The action runner: approved requests run on their own small pool, never under a process-wide lock.

An approval at quorum returns at once; the runner then claims and runs the request through
`approvals.execute` (which takes the store's locks, holds a lease renewed by a heartbeat, and records
the outcome), bounded by the action's ``timeout_s`` from the catalog. When a run ends, ``done`` gets the
final view (the app appends it to the incident's timeline and refreshes the card). Alert intake,
snapshots, commands and jobs never wait for an action.

A run that outlives its timeout is recorded ``unknown`` (it may still be acting); the executor call
cannot be killed, so it finishes on a daemon thread, and if it ever returns its result is recorded as
late (audit log, timeline) instead of being dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bot import tracing
from bot.services import Services
from remediation.approvals import service as approvals
from remediation.approvals.service import RequestView
from remediation.errors import GuardrailDeniedError, RemediationError, RequestExpiredError
from remediation.executors.base import ExecRequest, Executor, Outcome
from remediation.executors.routing import runs

log = logging.getLogger("remediate.runner")

Done = Callable[[RequestView, str], None]


class TimedExecutor:
    """Wraps an executor so one call returns within ``timeout_s``: ``unknown`` when it does not.

    The wrapped call keeps running on a daemon thread (a call in progress cannot be stopped safely);
    when it returns after the timeout, ``on_late(request_id, outcome)`` is called with its result.
    """

    def __init__(
        self, inner: Executor, timeout_s: float, on_late: Callable[[str, Outcome], None] | None = None
    ) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.timeout_s = timeout_s
        self.on_late = on_late

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Run the wrapped executor; past the timeout return ``unknown`` and leave it to finish late."""
        result: list[Outcome] = []
        finished = threading.Event()
        guard = threading.Lock()
        gave_up = [False]

        def call() -> None:
            try:
                outcome = self.inner.execute(request, dry_run)
            except Exception as exc:  # we cannot know how far it got
                outcome = Outcome("unknown", f"the {self.kind} executor raised {type(exc).__name__}: {exc}")
            with guard:
                result.append(outcome)
                late = gave_up[0]
            finished.set()
            if late and self.on_late is not None:
                self.on_late(request.request_id, outcome)

        name = f"remediate-action-{request.request_id[:12]}"
        threading.Thread(target=tracing.bound(call), name=name, daemon=True).start()  # in the run's trace
        finished.wait(self.timeout_s)
        with guard:
            if result:
                return result[0]
            gave_up[0] = True
        where = f" on {request.target}" if request.target else ""
        return Outcome(
            "unknown",
            f"{request.action.id}{where} did not finish within its timeout of {self.timeout_s:g} s "
            "(timeout_s in the catalog); it may still be acting: check the target by hand",
        )


def run_approved(services: Services, request_id: str, actor: str, *, on_late: Done) -> RequestView | None:
    """Claim and run one approved request in this thread under a lease, bounded by the action's timeout.

    A guardrail that refuses it now (rate limit, freeze, kill switch, blast radius) fails it with the
    reason (docs/safety.md). Returns the final view (``expired`` when it waited in line past its time
    to live), or None when it did not run (no executor; already run elsewhere). A result that comes
    after the timeout goes to ``on_late``.
    """
    if services.executor is None:
        return None
    with services.sessions() as s:
        request = approvals.get(db_session=s, request_id=request_id)
        timeout = services.catalog.get(request.action).timeout_s
    if not runs(services.executor, request.action):
        return None  # this action is routed to no executor: advisory only

    def late(late_id: str, outcome: Outcome) -> None:
        """Record the result of a run that outlived its timeout (it was marked unknown meanwhile)."""
        try:
            with services.sessions() as s:
                view = approvals.record_outcome(
                    db_session=s, guard=services.guard, request_id=late_id, outcome=outcome
                )
            on_late(view, "remediate")
        except Exception:
            log.exception("recording the late result of request %s failed", late_id)

    executor = TimedExecutor(services.executor, timeout, on_late=late)
    with services.sessions() as s:
        try:
            return approvals.execute(
                db_session=s,
                guard=services.guard,
                request_id=request_id,
                executor=executor,
                actor=actor,
                lease=services.lease,
            )
        except GuardrailDeniedError as exc:
            # Refused at run time: the request fails with the reason (audited) rather than sitting
            # approved while its card says it is running.
            return approvals.fail_blocked(
                db_session=s, guard=services.guard, request_id=request_id, reason=str(exc)
            )
        except RequestExpiredError as exc:  # it waited in line past its time to live: the card says so
            log.info("request %s did not run: %s", request_id, exc)
            s.expire_all()
            return approvals.get(db_session=s, request_id=request_id)
        except RemediationError as exc:  # already run (or taken) elsewhere: nothing to run or record
            log.info("request %s did not run: %s", request_id, exc)
            return None


class ActionRunner:
    """Runs approved requests on a bounded pool of ``threads``, each with its action's timeout."""

    def __init__(self, services: Services, *, done: Done, threads: int | None = None) -> None:
        self.services = services
        self.done = done
        self.pool = ThreadPoolExecutor(
            max_workers=threads or services.settings.action_threads, thread_name_prefix="remediate-runner"
        )

    def submit(self, request_id: str, actor: str) -> Future[RequestView | None]:
        """Queue an approved request; the future gives its final view (None when it did not run)."""
        # the run continues the trace of the approval that queued it (the click on the card)
        return self.pool.submit(tracing.bound(lambda: self._logged(request_id, actor)))

    def close(self) -> None:
        """Let queued and running actions finish and record their outcomes, then stop the pool."""
        self.pool.shutdown(wait=True, cancel_futures=False)

    def _logged(self, request_id: str, actor: str) -> RequestView | None:
        try:
            with tracing.span("action.run", request_id=request_id, actor=actor):
                return self.run(request_id, actor)
        except Exception:
            log.exception("running request %s failed", request_id)
            raise

    def run(self, request_id: str, actor: str) -> RequestView | None:
        """Run one approved request here and now, then hand its final view to ``done``; None if it did not run."""
        view = run_approved(self.services, request_id, actor, on_late=self.done)
        if view is not None:
            self.done(view, actor)
        return view

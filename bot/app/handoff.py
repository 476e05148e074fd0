"""The work after the ack in a process of its own: the front acks, the work process works.

`remediate serve` (docs/bot.md, "Latency") runs two processes. The **front** serves HTTP: it checks
Slack's signature, drops retried events and replayed forms (`bot.app.listeners`), runs the listener and
sends its ack, and takes alert intake. Where a listener would hand its work to the pool
(`Listeners.after_ack`), the front instead sends the request itself, once, as a `Frame` (raw body,
headers, mode, and whether the dedupe middleware already recorded its event id) over a pipe it created
to the **work process**, which builds the same Bolt app without signature checks or retry dedupe and
dispatches the frame: it drops a replayed command or click before anything runs (`checks_replay`), its
listeners ack into nothing and their after-ack work runs on its pool. The work process also runs the outbox worker
(the front's ``wake`` becomes a wake frame), the action runner and the scheduled jobs. So ranking,
rendering, the store and the Web API calls after an ack never share the front's interpreter (GIL),
and, at a lower CPU priority (`WORK_NICE`), take the CPUs only when the front's acks leave them.

Nothing reaches the work process except through the pipe: it listens on no socket. The ``recorded``
flag comes from the front's own middleware, never from a header a client could send. A second pipe
(duplex, private to the pair) carries /metrics: at each scrape the front asks for the work process's
exposition (`WorkProcess.scrape`, answered by `answer_scrapes` on a thread there) and merges it into its
own (`bot.observe.merge`); one that does not answer within `SCRAPE_TIMEOUT_S` is left out.

`WorkProcess` (front side) spawns the process and restarts it when it dies; frames wait meanwhile in a
bounded queue (`QUEUE_FRAMES`) and go out after the restart. A frame the process had already read, or
that sat in the pipe when it died, is lost (its request was acked; logged). `close` sends what is
queued, then a stop frame: the process finishes its queued work and exits. `serve_frames` is the work
process's side.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

from slack_bolt import App, BoltRequest

from bot import tracing

log = logging.getLogger("remediate.handoff")
QUEUE_FRAMES = 10_000  # frames waiting for the work process (while it restarts); more are dropped
RESTART_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 5.0)  # after the first, second, ... death in a row
PR_SET_PDEATHSIG = 1  # prctl(2)
SCRAPE_TIMEOUT_S = 2.0  # the front's wait for the work process's /metrics exposition
WORK_NICE = 10  # the work process's CPU priority below the front's: acks first when the CPUs are busy
SENT = "remediate_handed_off"  # BoltContext key: this request's frame is queued (at most one per request)
_current = threading.local()  # the Slack request the front's request thread is dispatching


@dataclass(frozen=True)
class Frame:
    """One message to the work process: a Slack request to dispatch, a wake of the outbox, or stop."""

    kind: str  # "request" | "wake" | "stop"
    body: str | dict[str, Any] = ""  # HTTP: the raw body, as signed; Socket Mode: the payload
    headers: dict[str, Any] = field(default_factory=dict)
    mode: str = "http"
    recorded: bool = False  # the front's dedupe recorded the event id (a retry that came first)
    trace: dict[str, str] = field(default_factory=dict)  # W3C carrier of the request's trace


WAKE, STOP = Frame("wake"), Frame("stop")


def capture(bolt: App) -> None:
    """Register, as the first middleware, the one that remembers the request being dispatched (front)."""

    @bolt.middleware
    def remember_request(req: BoltRequest, next: Callable[[], None]) -> None:
        # with process_before_response the listeners run on this thread right after the middleware
        _current.request = req
        next()


class WorkProcess:
    """The front's handle on the work process: spawn, feed, supervise, drain."""

    def __init__(self, *, capacity: int = QUEUE_FRAMES, name: str = "remediate-work") -> None:
        self.name = name
        self.restarts = 0
        self.dropped = 0  # frames dropped: the queue full, or sent to a process that ended at shutdown
        self._frames: queue.Queue[Frame] = queue.Queue(capacity)
        self._target: Callable[[Connection, ProcessEvent, Connection], None] | None = None
        self._process: BaseProcess | None = None
        self._ready: ProcessEvent | None = None  # set by the process once it dispatches frames
        self._conn: Connection | None = None
        self._scrape_conn: Connection | None = None  # duplex: scrape requests out, expositions back
        self._scrape_lock = threading.Lock()  # one scrape at a time on the pipe
        self._scrapes = 0  # the number of the last request: a late answer to an earlier one is dropped
        self._changed = threading.Condition()  # a new process (and pipe), or closing
        self._closing = threading.Event()
        self._wake_queued = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the front's side of a request ---------------------------------------------------------------
    def forward(self) -> bool:
        """Queue the Slack request this thread dispatches (once); False when there is none.

        With the queue full (the work process down for long) the frame is dropped and counted: its
        replay check and its work both belong to the work process, so it never runs here.
        """
        req: BoltRequest | None = getattr(_current, "request", None)
        if req is None:
            return False
        if req.context.get(SENT):
            return True
        frame = Frame(
            "request",
            body=req.raw_body if req.mode == "http" else req.body,
            headers={k: list(v) for k, v in req.headers.items()},
            mode=req.mode,
            recorded=bool(req.context.get("event_recorded")),
            trace=tracing.carrier(),
        )
        req.context[SENT] = True
        try:
            self._frames.put_nowait(frame)
        except queue.Full:
            self.dropped += 1
            log.error("the work process's queue is full (%d frames): a Slack request's work is dropped",
                      self._frames.maxsize)  # fmt: skip
        return True

    def wake(self) -> None:
        """Tell the work process's outbox worker new rows are waiting (one wake frame queued at a time)."""
        if self._wake_queued.is_set():
            return
        self._wake_queued.set()
        try:
            self._frames.put_nowait(WAKE)
        except queue.Full:
            self._wake_queued.clear()  # the worker also polls the store every 250 ms

    # -- the process -----------------------------------------------------------------------------------
    def start(self, target: Callable[[Connection, ProcessEvent, Connection], None]) -> None:
        """Spawn the process running ``target(connection, ready, scrapes)``, then the sender and the watcher.

        ``target`` is picklable (a module-level function or a partial of one); it sets ``ready`` once it
        dispatches frames (`serve_frames` does) and may answer /metrics on ``scrapes`` (`answer_scrapes`).
        """
        self._target = target
        self._spawn()
        for run, what in ((self._send_loop, "send"), (self._watch, "watch")):
            thread = threading.Thread(target=run, name=f"{self.name}-{what}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _spawn(self) -> None:
        assert self._target is not None
        ctx = mp.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        asks, answers = ctx.Pipe(duplex=True)
        ready = ctx.Event()
        args = (reader, ready, answers)
        process = ctx.Process(target=self._target, args=args, name=self.name, daemon=True)
        process.start()
        reader.close()  # only the child reads: a write after its death fails instead of blocking
        answers.close()
        with self._changed:
            self._process, self._conn, self._ready = process, writer, ready
            old, self._scrape_conn = self._scrape_conn, asks
            self._changed.notify_all()
        if old is not None:
            with self._scrape_lock:  # not under a scrape reading it
                old.close()
        log.info("work process %s started", process.pid)

    def _watch(self) -> None:
        """Restart the process whenever it dies (unless closing); a quick death waits longer each time."""
        deaths = 0
        while not self._closing.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            wait([process.sentinel])
            if self._closing.is_set():
                return
            deaths = 0 if time.monotonic() - started > 60 else deaths + 1
            log.error("work process %s ended (exit code %s); restarting it, %d frames waiting",
                      process.pid, process.exitcode, self._frames.qsize())  # fmt: skip
            time.sleep(RESTART_DELAYS_S[min(deaths, len(RESTART_DELAYS_S) - 1)])
            if self._closing.is_set():
                return
            self._spawn()
            self.restarts += 1

    def _send_loop(self) -> None:
        """Send each frame in order; one that meets a dead process is sent again after the restart."""
        while True:
            frame = self._frames.get()
            if frame is WAKE:
                self._wake_queued.clear()
            while not self._send(frame):
                if self._closing.is_set():  # no restart comes: the process is gone
                    self.dropped += frame is not STOP
                    break
                with self._changed:
                    if self._conn is None and not self._closing.is_set():
                        self._changed.wait(1.0)
            if frame is STOP:
                return

    def _send(self, frame: Frame) -> bool:
        """Write one frame to the current process; False (and that pipe closed) when it is dead."""
        with self._changed:
            conn = self._conn
        if conn is None:
            return False
        try:
            conn.send(frame)
            return True
        except OSError:  # EPIPE: the process died; the watcher starts another
            with self._changed:
                if self._conn is conn:
                    self._conn = None
            conn.close()
            return False

    def scrape(self, timeout_s: float = SCRAPE_TIMEOUT_S) -> bytes | None:
        """Return the work process's /metrics exposition; None when it is down, starting or slow."""
        with self._scrape_lock:
            with self._changed:
                conn, ready = self._scrape_conn, self._ready
            if conn is None or ready is None or not ready.is_set():
                return None
            self._scrapes += 1
            deadline = time.monotonic() + timeout_s
            try:
                conn.send(self._scrapes)
                while conn.poll(max(0.0, deadline - time.monotonic())):
                    number, text = conn.recv()
                    if number == self._scrapes:
                        return bytes(text)
            except (EOFError, OSError):  # it died: the watcher starts another, with a new pipe
                return None
            log.warning("the work process did not answer a /metrics scrape within %.1f s", timeout_s)
            return None

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the process dispatches frames (built its app); False after ``timeout_s``."""
        return self._ready is not None and self._ready.wait(timeout_s)

    def status(self) -> dict[str, Any]:
        """Return the process's pid, whether it runs and dispatches, its restarts and the frames waiting."""
        process = self._process
        return {
            "pid": process.pid if process is not None else None,
            "alive": process is not None and process.is_alive(),
            "ready": self._ready is not None and self._ready.is_set(),
            "restarts": self.restarts,
            "queued": self._frames.qsize(),
            "lost": self.dropped,
        }

    def close(self, timeout_s: float = 30.0) -> None:
        """Send what is queued and a stop frame; wait for the process to finish its work (then end it)."""
        if self._target is None:
            return
        try:
            self._frames.put(STOP, timeout=timeout_s)
        except queue.Full:
            log.error("work process: %d frames still queued at shutdown", self._frames.qsize())
        self._closing.set()  # no restart from now on; the stop frame still goes to a live process
        with self._changed:
            self._changed.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        process = self._process
        if process is not None:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("work process %s did not stop within %.0f s; killing it", process.pid, timeout_s)
                process.kill()  # it ignores SIGTERM: stopping is the front's to decide
                process.join(5)
        with self._changed:
            conn, self._conn = self._conn, None
            asks, self._scrape_conn = self._scrape_conn, None
        if conn is not None:
            conn.close()
        if asks is not None:
            with self._scrape_lock:
                asks.close()


def die_with_front() -> None:
    """Have the system end this (work) process when the front ends, however it ends (Linux; else nothing).

    A replica is the pair: `kill -9` of the front must not leave its work process running an action
    and renewing its lease, or recovery elsewhere would wait for it (docs/operations.md).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the front ended before the call
        os._exit(0)


def answer_scrapes(conn: Connection, exposition: Callable[[], bytes]) -> threading.Thread:
    """Work process: answer each of the front's /metrics requests with ``exposition()``, on a thread."""

    def answer() -> None:
        while True:
            try:
                number = conn.recv()
            except (EOFError, OSError):  # the front is gone
                return
            try:
                text = exposition()
            except Exception:  # the front still answers its scrape, with this process marked down
                log.exception("metrics: the work process's exposition failed")
                continue
            try:
                conn.send((number, text))
            except OSError:
                return

    thread = threading.Thread(target=answer, name="remediate-work-metrics", daemon=True)
    thread.start()
    return thread


def serve_frames(
    bolt: App, conn: Connection, wake: Callable[[], None], ready: ProcessEvent | None = None
) -> None:
    """Work process: dispatch each frame's request on ``bolt``; return at a stop frame or when the front is gone.

    The listeners ack into nothing and submit their work to the pool, so this loop only routes.
    """
    die_with_front()
    os.nice(WORK_NICE)  # on a busy machine the front's acks come first (docs/bot.md, Latency)
    if ready is not None:
        ready.set()
    while True:
        try:
            frame: Frame = conn.recv()
        except (EOFError, OSError):
            log.warning("the front process is gone; finishing the queued work")
            return
        if frame.kind == "stop":
            return
        if frame.kind == "wake":
            wake()
            continue
        try:
            request = BoltRequest(
                body=frame.body,
                headers=frame.headers,
                context={"event_recorded": True} if frame.recorded else None,
                mode=frame.mode,
            )
            with tracing.continued(frame.trace):  # the request's trace, as if dispatched in the front
                bolt.dispatch(request)
        except Exception:  # one bad frame must not end the loop; no one waits for its answer
            log.exception("a handed-off Slack request failed")

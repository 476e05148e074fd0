"""A live simulated world for the bot: the sim core stepped in real time, faults firing, alerts sent out.

`LiveWorld` runs one incident at a time on a topology. A background thread advances the simulation
one evaluation (a ``wait`` step, one simulated minute) every ``tick_s`` real seconds while an incident
is open; while the world is healthy a new random fault fires ``fault_every_s`` seconds after the last
one fired. Alerts that start or stop firing are sent through an `AlertSink` (the bot's Alertmanager
webhook in the demo), and when the world is healthy again every alert is sent resolved, so the bot's
alert-born incident resolves itself. Whenever the state changed, the metrics as the team would see
them (noisy error rate, p99, CPU, memory, saturation, availability, per-call error rates, replicas,
request rate; nothing for a service whose telemetry is missing) go to an optional `SnapshotSink` (the
bot's ``POST /snapshots``) just before the alerts, so an incident opens with them. `apply` is the
`SimWorld` protocol of the sim executor: an approved action becomes one simulator step with that
action, immediately.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bot.demo.alerts import AlertSink, SimAlert, SnapshotSink
from sim.canary import canary_share, canary_step, undo_canary
from sim.core import BatchCore, SimConfig
from sim.dynamics import M_ERR
from sim.faults import FaultSpec, Scenario, sample_scenario
from sim.observation import ALERTS, EDGE_METRIC, METRICS
from sim.policies import Choice, index_of
from sim.resolve import resolve_topology
from sim.topology import Topology

log = logging.getLogger("remediate.demo.world")


@dataclass(frozen=True)
class WorldOptions:
    """How the live world behaves.

    Attributes:
        fault_every_s: real seconds between fault onsets (a fault waits while an incident is open).
        first_fault_s: real seconds before the first fault; ``fault_every_s`` when None.
        tick_s: real seconds per simulated evaluation (each is one simulated minute).
        seed: seed of every random choice (faults, noise); same seed, same sequence of incidents.
        faults: fixed faults for every incident (``{"kind", "target"}`` or FaultSpec); random when None.
        max_faults: most simultaneous faults of a random incident.
        herrings: whether random incidents carry red herrings (harmless changes and passing symptoms).
        clear_after_ticks: a metric alert is sent resolved after this many evaluations without holding
            (Alertmanager's resolve delay; keeps noisy alerts from flapping on the timeline).
    """

    fault_every_s: float = 60.0
    first_fault_s: float | None = None
    tick_s: float = 5.0
    seed: int = 0
    faults: tuple[FaultSpec | Mapping[str, Any], ...] | None = None
    max_faults: int = 1
    herrings: bool = False
    clear_after_ticks: int = 2


@dataclass(frozen=True)
class WorldStatus:
    """A snapshot of the world for the demo's status line and for tests."""

    incidents: int
    active: bool
    faults: tuple[FaultSpec, ...]
    firing: tuple[tuple[str, str], ...]
    actions: tuple[tuple[str, str | None, str], ...]
    sim_minutes: float


class LiveWorld:
    """One simulated topology, stepped in real time on a background thread; thread-safe."""

    def __init__(
        self,
        topology: str | Topology,
        sink: AlertSink,
        options: WorldOptions | None = None,
        metrics: SnapshotSink | None = None,
    ) -> None:
        self.topology = resolve_topology(topology) if isinstance(topology, str) else topology
        self.sink = sink
        self.metrics = metrics  # may be set later, before start()
        self._version = 0  # bumped on every state change; snapshots go out when it moved
        self._snapshots_sent = -1
        self.options = options or WorldOptions()
        self.core = BatchCore(self.topology, 1, seed=self.options.seed, config=SimConfig(max_steps=10**9))
        self._rng = np.random.default_rng(self.options.seed)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = False
        self._incidents = 0
        self._sim_minutes = 0.0
        self._actions: list[tuple[str, str | None, str]] = []
        self._canary_runs: dict[tuple[str, str | None], np.ndarray] = {}  # what each canary changed
        self._firing: dict[tuple[str, str], SimAlert] = {}  # what the sink has been told is firing
        self._absent: dict[tuple[str, str], int] = {}  # evaluations a firing alert has not held
        self._wait = index_of(self.core, Choice("wait", None))
        self._quiet()
        first = self.options.first_fault_s
        self._next_fault = time.monotonic() + (self.options.fault_every_s if first is None else first)

    # ---- lifecycle ----

    def start(self) -> LiveWorld:
        """Start the background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-world", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (alerts already sent stay as they are)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LiveWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the SimWorld protocol ----

    def apply(self, action_id: str, target: str | None, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Perform a catalog action now as one simulator step; answer ``{"ok", "detail", "outcome"}``."""
        with self._lock:
            if target is not None and target not in self.topology.index:
                return {"ok": False, "detail": f"{target} is not a service of {self.topology.name}"}
            try:
                index = index_of(self.core, Choice(action_id, target))
            except KeyError:
                return {"ok": False, "detail": f"the simulator has no action {action_id!r}"}
            if params.get("canary_undo"):  # docs/verification.md: take a canary back
                return self._canary(action_id, target, index, params)
            if not self.core.action_masks()[0, index]:
                return {"ok": False, "detail": f"{action_id} does not apply to {target} now"}
            if "canary_share" in params:  # a canary: on a share of the replicas only
                return self._canary(action_id, target, index, params)
            result = self.core.step([index])
            self._version += 1
            outcome = self.core.outcome_name(int(result.outcome[0]))
            self._sim_minutes += float(result.duration_s[0]) / 60.0
            self._actions.append((action_id, target, outcome))
            healthy = bool(self.core.healthy()[0])
        self._wake.set()  # alerts go out from the world's thread, never from the caller's
        where = f" on {target}" if target else ""
        detail = {
            "succeeded": f"{action_id}{where} fixed a cause",
            "no_effect": f"{action_id}{where} ran but changed nothing",
            "harmful": f"{action_id}{where} ran and made things worse",
        }.get(outcome, f"{action_id}{where}: {outcome}")
        if healthy:
            detail += "; the system is healthy again"
        return {"ok": outcome != "failed", "detail": detail, "outcome": outcome, "healthy": healthy}

    def _canary(
        self, action_id: str, target: str | None, index: int, params: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Run a canary on a share of the target's replicas, or take one back (under the lock)."""
        key = (action_id, target)
        if params.get("canary_undo"):
            delta = self._canary_runs.pop(key, None)
            if delta is not None:
                undo_canary(self.core, delta)
                self._version += 1
            self._actions.append((f"undo canary {action_id}", target, "undone"))
            said = "took back" if delta is not None else "found nothing to take back of"
            return {"ok": True, "detail": f"{said} the canary of {action_id} on {target}"}
        replicas = int(self.core.state.replicas[0, self.topology.index[target or ""]])
        count, part = canary_share(replicas, float(params["canary_share"]))
        run = canary_step(self.core, index, part)
        self._canary_runs[key] = run.delta
        self._version += 1
        outcome = self.core.outcome_name(int(run.result.outcome[0]))
        self._sim_minutes += float(run.result.duration_s[0]) / 60.0
        self._actions.append((f"canary {action_id}", target, outcome))
        detail = f"canary: {action_id} on {count} of {replicas} replicas of {target} ({outcome})"
        return {"ok": outcome != "failed", "detail": detail, "outcome": outcome, "replicas": count}

    # ---- what is going on ----

    def status(self) -> WorldStatus:
        """Return a snapshot: incidents so far, active faults, alerts firing, actions applied."""
        with self._lock:
            return WorldStatus(
                incidents=self._incidents,
                active=self._active,
                faults=tuple(self.core.active_faults(0)) if self._active else (),
                firing=tuple(sorted(self._firing)),
                actions=tuple(self._actions),
                sim_minutes=self._sim_minutes,
            )

    def fire(self, faults: Sequence[FaultSpec | Mapping[str, Any]] | None = None) -> tuple[FaultSpec, ...]:
        """Start an incident now (random unless ``faults``); refused with an empty tuple while one is open."""
        with self._lock:
            if self._active:
                return ()
            chosen = faults if faults is not None else self.options.faults
            scenario = sample_scenario(
                self.topology,
                self._rng,
                faults=list(chosen) if chosen is not None else None,
                max_faults=self.options.max_faults,
                herring_p=0.4 if self.options.herrings else 0.0,
                missing_telemetry_p=0.0,
            )
            self.core.reset(scenarios=[scenario])
            self._version += 1
            self._active = True
            self._incidents += 1
            self._next_fault = time.monotonic() + self.options.fault_every_s
            log.info("fault fired: %s", ", ".join(f"{f.kind} on {f.target}" for f in scenario.faults))
        self._wake.set()
        return scenario.faults

    # ---- the loop ----

    def _quiet(self) -> None:
        """Reset the core to a healthy world (no faults, nothing odd)."""
        self.core.reset(scenarios=[Scenario(faults=())])
        self._version += 1

    def _run(self) -> None:
        next_tick = time.monotonic() + self.options.tick_s
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                active = self._active
                due_fault = not active and now >= self._next_fault
            if due_fault:
                self.fire()
            elif active and now >= next_tick:
                with self._lock:
                    if self._active:
                        result = self.core.step([self._wait])
                        self._version += 1
                        self._sim_minutes += float(result.duration_s[0]) / 60.0
                        self._evaluated()
                next_tick = now + self.options.tick_s
            self._send_snapshots()  # before the alerts: a new incident opens with the current metrics
            self._send()
            with self._lock:
                until = min(next_tick if self._active else self._next_fault, self._next_fault)
            self._wake.wait(max(0.0, min(until - time.monotonic(), 1.0)))
            self._wake.clear()

    def snapshots(self) -> list[dict[str, Any]]:
        """Return each observed service's metrics now, in the `POST /snapshots` form (dated now)."""
        with self._lock:
            core, t = self.core, self.topology
            observed, present = core.observed[0], core.state.present[0]
            edges = core.edge_features[0, :, 0]
            at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            out: list[dict[str, Any]] = []
            for n, service in enumerate(t.services):
                if not present[n]:
                    continue  # missing telemetry: nothing arrives
                values = {name: round(float(observed[m, n]), 6) for m, name in enumerate(METRICS)}
                values["replicas"] = float(core.state.replicas[0, n])
                values["traffic_ratio"] = round(float(core.traffic_ratio[0, n]), 6)
                for e in np.flatnonzero(t.src == n).tolist():
                    values[EDGE_METRIC + t.services[int(t.dst[e])]] = round(float(edges[e]), 6)
                out.append({"service": service, "at": at, "values": values})
            return out

    def _send_snapshots(self) -> None:
        """Send the metrics when the state changed since they were last sent; retry on failure."""
        if self.metrics is None:
            return
        with self._lock:
            version = self._version
        if version == self._snapshots_sent:
            return
        if self.metrics.send_snapshots(self.snapshots()):
            self._snapshots_sent = version

    def _evaluated(self) -> None:
        """Count evaluations an alert has not held (called after each wait step, lock held)."""
        holding = self._holding()
        for key in self._firing:
            self._absent[key] = 0 if key in holding else self._absent.get(key, 0) + 1

    def _holding(self) -> dict[tuple[str, str], float]:
        """Return the alerts whose condition holds now: (alertname, service) -> the service's error rate."""
        found: dict[tuple[str, str], float] = {}
        alerts = self.core.alerts[0]
        errors = self.core.observed[0, M_ERR]
        for a, n in zip(*np.nonzero(alerts), strict=True):
            found[(ALERTS[int(a)], self.topology.services[int(n)])] = round(float(errors[int(n)]), 4)
        return found

    def _send(self) -> None:
        """Tell the sink what started and stopped firing since it was last told; retry on failure."""
        with self._lock:
            healthy = bool(self.core.healthy()[0])
            if self._active and healthy:
                self._active = False
                self._next_fault = max(self._next_fault, time.monotonic() + self.options.tick_s)
                log.info("the world is healthy again after %d actions", len(self._actions))
                self._quiet()
            holding = self._holding() if self._active else {}
            now = datetime.now(UTC)
            changes: list[SimAlert] = []
            for key, value in holding.items():
                if key not in self._firing:
                    changes.append(self._alert(key, "firing", now, value))
            for key, alert in self._firing.items():
                gone = not self._active or (
                    key not in holding and self._absent.get(key, 0) >= self.options.clear_after_ticks
                )
                if gone:
                    changes.append(alert._replace(status="resolved", ends_at=now))
            incident = self._incidents
        if not changes:
            return
        if not self.sink.send(changes, group=f"{self.topology.name}/incident-{incident}"):
            return  # not delivered: the same changes are computed again next round
        with self._lock:
            for alert in changes:
                key = (alert.name, alert.service)
                if alert.status == "firing":
                    self._firing[key] = alert
                    self._absent[key] = 0
                else:
                    self._firing.pop(key, None)
                    self._absent.pop(key, None)

    def _alert(self, key: tuple[str, str], status: str, now: datetime, error_rate: float) -> SimAlert:
        name, service = key
        severity = "critical" if name in ("ServiceDown", "HighErrorRate") else "warning"
        return SimAlert(
            name=name,
            service=service,
            status=status,
            severity=severity,
            summary=f"{name} on {service}",
            starts_at=now,
            ends_at=None,
            topology=self.topology.name,
            incident=self._incidents,
            error_rate=error_rate,
        )

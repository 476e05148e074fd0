"""The verdict on one executed action, from what was seen before it and after its settle time.

A pure function of two pictures (the alerts firing and the latest metrics per service), used the same
way by the bot on a live incident and by the simulator's evaluation. Verdicts (docs/verification.md):

* ``harmful``: new alerts appeared on the target or its neighbours (collateral), or a service's error
  rate or unavailability rose by more than ``worse_by``;
* ``effective``: every alert the action targeted cleared (or, after one recheck, the metrics of the
  target and its callers are back to healthy while an alert lags behind);
* ``partial``: some targeted alerts cleared, or the metrics improved by half, but not all;
* ``ineffective``: nothing the action targeted got better.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VERDICTS: tuple[str, ...] = ("effective", "partial", "ineffective", "harmful")
Alert = tuple[str, str]  # (service, alert name)


@dataclass(frozen=True)
class Picture:
    """What was seen at one moment: the firing alerts and the latest metrics of each service."""

    firing: frozenset[Alert]
    metrics: Mapping[str, Mapping[str, float]]

    def as_json(self) -> dict[str, object]:
        """Return the picture as JSON (kept with the verification as the "before")."""
        return {
            "firing": sorted([list(a) for a in self.firing]),
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Picture:
        """Read a picture written by `as_json`."""
        firing = raw.get("firing") or []
        metrics = raw.get("metrics") or {}
        assert isinstance(firing, list) and isinstance(metrics, dict)
        return cls(
            frozenset((str(a[0]), str(a[1])) for a in firing),
            {str(k): {str(m): float(x) for m, x in dict(v).items()} for k, v in metrics.items()},
        )


@dataclass(frozen=True)
class Tuning:
    """The thresholds of the verdict (docs/verification.md, "Tuning")."""

    healthy_bad: float = 0.02
    """A service whose error rate and unavailability are both at most this is healthy."""
    worse_by: float = 0.10
    """A rise of error rate or unavailability above this (absolute) on any watched service is harm."""
    improved_share: float = 0.5
    """Metrics count as improved when the worst badness fell to at most this share of what it was."""


@dataclass(frozen=True)
class Judgement:
    """A verdict with its evidence; ``lagging``: metrics healthy but a targeted alert still fires."""

    verdict: str
    summary: str
    evidence: tuple[str, ...]
    lagging: bool = False


def badness(values: Mapping[str, float]) -> float:
    """Return how unwell a service looks: the larger of its error rate and its unavailability (0..1)."""
    errors = float(values.get("error_rate", 0.0))
    down = 1.0 - float(values.get("availability", 1.0))
    return max(errors, down, 0.0)


def _worst(picture: Picture, names: Iterable[str]) -> tuple[float, str | None]:
    scored = [(badness(picture.metrics[n]), n) for n in names if n in picture.metrics]
    return max(scored, default=(0.0, None))


def _percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def judge(
    *,
    target: str | None,
    scope: Iterable[str],
    neighbours: Iterable[str],
    before: Picture,
    after: Picture,
    new_alerts: Iterable[Alert] = (),
    exposed: Iterable[str] = (),
    waited: str = "",
    tuning: Tuning | None = None,
) -> Judgement:
    """Judge an action on ``target``; ``scope``: the target and its callers (where its symptoms show).

    ``neighbours`` are watched for collateral harm (callers and callees); ``new_alerts`` are alerts seen
    firing since the action anywhere among them (e.g. on another incident); ``exposed`` are the callers
    of services already failing before the action (new alerts there are the old fault spreading, not
    harm, unless on the target itself); ``waited`` reads "after 3 min".
    """
    t = tuning or Tuning()
    scope = {s for s in scope if s} | ({target} if target else set())
    spread = set(exposed) - ({target} if target else set())
    watched = (scope | set(neighbours)) - spread
    targeted = {a for a in before.firing if a[0] in scope} or set(before.firing)
    still = sorted(targeted & after.firing)
    cleared = sorted(targeted - after.firing)
    collateral = sorted(({a for a in after.firing} | set(new_alerts)) - before.firing)
    collateral = [a for a in collateral if a[0] in watched]
    evidence = [f"{name} on {svc} cleared" for svc, name in cleared]
    evidence += [f"{name} on {svc} still firing" for svc, name in still]
    evidence += [f"new alert {name} on {svc}" for svc, name in collateral]
    worse = []
    for svc in sorted(watched):
        if svc in after.metrics:
            was = badness(before.metrics.get(svc, {}))
            now = badness(after.metrics[svc])
            if now - was > t.worse_by:
                worse.append(f"errors on {svc} rose from {_percent(was)} to {_percent(now)}")
    evidence += worse
    was, _ = _worst(before, scope)
    now, where = _worst(after, scope)
    suffix = f" {waited}" if waited else ""
    if now > t.healthy_bad and where is not None:
        evidence.append(f"errors on {where} {_percent(now)}{suffix} (were {_percent(was)})")
    if collateral or worse:
        what = (worse or [f"new alert {collateral[0][1]} on {collateral[0][0]}"])[0]
        return Judgement("harmful", what + suffix, tuple(evidence))
    healthy = now <= t.healthy_bad
    if targeted and not still:
        return Judgement("effective", f"all targeted alerts cleared{suffix}", tuple(evidence))
    if still and healthy and was > t.healthy_bad:
        lag = f"metrics back to healthy{suffix}; {still[0][1]} on {still[0][0]} still firing (lags)"
        return Judgement("effective", lag, tuple(evidence), lagging=True)
    improved = was > t.healthy_bad and now <= was * t.improved_share
    if cleared or improved:
        what = (
            f"errors still {_percent(now)}{suffix}"
            if not healthy
            else f"{len(still)} alert(s) still firing{suffix}"
        )
        return Judgement("partial", what, tuple(evidence))
    what = (
        f"errors still {_percent(now)}{suffix}" if now > 0 else f"{len(still)} alert(s) still firing{suffix}"
    )
    return Judgement("ineffective", what, tuple(evidence))

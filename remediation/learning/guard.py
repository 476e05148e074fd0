"""The guardrails in the simulator: the plan-stage mask the bot would apply, per simulated incident.

Principle 5 of the style guide: the same decision function masks unsafe actions in training and
refuses them in the bot. ``EpisodeGuard`` builds a ``remediation.guardrails.decide.Context`` per
incident from the episode (the catalog, the RBAC config passed in, the simulator's clock, the
actions run so far as recent runs, replicas and kinds from the topology, no freezes) and asks
``remediation.guardrails.mask.action_mask`` (the function the bot's rank path uses) for the mask;
after the first step only the pairs an incident ran are decided again, with the same ``decide`` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from playbooks.catalog import Catalog
from remediation.errors import GuardrailsRefuseAllError
from remediation.guardrails.decide import Context, Run, Switches, decide
from remediation.guardrails.mask import action_mask, decode
from remediation.guardrails.models import RbacConfig
from sim.topology import Topology

NO_SWITCHES = Switches()
"""No freeze or kill switch flipped by hand: how training runs."""
SIM_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Wall time of a simulated incident's start (its ``elapsed_s`` counts from here); fixed, so seeded runs repeat."""


def without_freezes(config: RbacConfig) -> RbacConfig:
    """Return the config without its freeze windows: a simulated incident has no calendar to freeze on."""
    return config.model_copy(update={"freeze": config.freeze.model_copy(update={"windows": ()})})


@dataclass
class EpisodeGuard:
    """The guardrails of ``n_envs`` simulated incidents on one topology, remembering what each ran.

    Args:
        topology: the service graph (services, kinds and replicas feed the context).
        catalog: the action catalog (the same one the simulator's action table comes from).
        config: the RBAC and guardrails config (the configured one, or the shipped default).
        n_envs: incidents side by side.
        switches: kill switches and freezes flipped by hand (none in training).
    """

    topology: Topology
    catalog: Catalog
    config: RbacConfig
    n_envs: int
    switches: Switches = NO_SWITCHES
    runs: list[list[Run]] = field(init=False)
    _ran: list[dict[int, None]] = field(init=False)  # per incident, the flat indices it ran (ordered set)
    _kinds: dict[str, str] = field(init=False)
    _replicas: dict[str, int] = field(init=False)
    _base: npt.NDArray[np.int8] = field(init=False)

    def __post_init__(self) -> None:
        t = self.topology
        self.config = without_freezes(self.config)
        self._kinds = dict(zip(t.services, t.kinds, strict=True))
        self._replicas = {s: int(r) for s, r in zip(t.services, t.replicas, strict=True)}
        self.reset()
        self._base = action_mask(t.services, self.catalog, self.context(0, 0.0))

    def context(self, env: int, elapsed_s: float) -> Context:
        """Return the plan-stage context of one incident at ``elapsed_s`` into the episode."""
        return Context(
            config=self.config,
            catalog=self.catalog,
            now=SIM_EPOCH + timedelta(seconds=float(elapsed_s)),
            stage="plan",
            service_kinds=self._kinds,
            replicas=self._replicas,
            switches=self.switches,
            recent_runs=tuple(self.runs[env]),
        )

    def masks(
        self, elapsed_s: npt.NDArray[np.float64], alive: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.int8]:
        """Return the (B, N * A + G) int8 masks (1 = allowed), equal to ``action_mask`` of each incident's context.

        Incidents not ``alive`` (already over) keep the run-free mask: nothing they choose runs.

        Raises:
            GuardrailsRefuseAllError: the guardrails refuse every action in some incident.
        """
        out = np.repeat(self._base[None, :], self.n_envs, axis=0)
        services = self.topology.services
        for env, ran in enumerate(self._ran):
            if not ran or (alive is not None and not alive[env]):
                continue
            # recent runs only count against the same action on the same target, so only the pairs this
            # incident ran can differ from the run-free mask: decide those again exactly as action_mask
            # does (stage "plan", catalog-default parameters), not every pair of the graph
            ctx = self.context(env, float(elapsed_s[env]))
            for index in ran:
                action, target = decode(index, services, self.catalog)
                out[env, index] = 1 if decide(action, target, {}, None, ctx).allowed else 0
        empty = np.flatnonzero(~out.any(axis=1) & (True if alive is None else alive))
        if empty.size:
            raise GuardrailsRefuseAllError(
                f"the guardrails refuse every action (wait included) in simulated incident {int(empty[0])} on "
                f"{self.topology.name}; lift the kill switch or the rate limits on wait in the config"
            )
        return out

    def record(self, actions: npt.NDArray[np.int64], ran: npt.NDArray[np.bool_],
               elapsed_s: npt.NDArray[np.float64]) -> None:  # fmt: skip
        """Remember the actions that ran (``ran``) at each incident's clock, as the limits' recent runs."""
        for env in np.flatnonzero(ran).tolist():
            action, target = decode(int(actions[env]), self.topology.services, self.catalog)
            started = SIM_EPOCH + timedelta(seconds=float(elapsed_s[env]))
            self.runs[env].append(Run(action=action, target=target, started_at=started))
            self._ran[env][int(actions[env])] = None

    def reset(self) -> None:
        """Forget every run (a new batch of incidents)."""
        self.runs = [[] for _ in range(self.n_envs)]
        self._ran = [{} for _ in range(self.n_envs)]

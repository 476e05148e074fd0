"""The learning side masks with the RBAC config its caller passes, not always the shipped one."""

from __future__ import annotations

from playbooks.catalog import builtin_catalog
from remediation.evaluation.sim_eval import evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.guardrails.models import RbacConfig
from remediation.learning.baselines import OraclePolicy
from remediation.learning.ranking import guardrail_mask
from sim.topology import builtin_topology


def _halted() -> RbacConfig:
    shipped = load_rbac(None)
    return shipped.model_copy(
        update={"kill_switch": shipped.kill_switch.model_copy(update={"engaged": True})}
    )


def test_guardrail_mask_follows_the_config_it_is_given() -> None:
    topology = builtin_topology("online-boutique")
    catalog = builtin_catalog()
    args = (topology.services, topology.kinds, catalog)
    shipped = guardrail_mask(*args, config=load_rbac(None), replicas=list(topology.replicas))
    halted = guardrail_mask(*args, config=_halted(), replicas=list(topology.replicas))
    n_service = len(topology.services) * len(catalog.service_actions)
    assert shipped[:n_service].sum() > 0  # the shipped config allows service actions
    assert halted[:n_service].sum() == 0  # an engaged kill switch in the configured file allows none


def test_offline_evaluation_ranks_under_the_configured_rbac() -> None:
    topology = builtin_topology("online-boutique")
    rbac = _halted()
    results = evaluate_policies(topology, {"oracle": OraclePolicy()}, episodes=4, seed=3, rbac=rbac)
    shipped = evaluate_policies(
        topology, {"oracle": OraclePolicy()}, episodes=4, seed=3, rbac=load_rbac(None)
    )
    assert results["oracle"].success_rate < shipped["oracle"].success_rate

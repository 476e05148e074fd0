"""Which executors exist, and their catalog-config checkers for `remediate playbooks validate`."""

from __future__ import annotations

from playbooks.validate import SpecChecker
from remediation.executors import kubernetes, pagerduty, shell, sim, webhook

CHECKERS: dict[str, SpecChecker] = {
    "sim": sim.check_spec,
    "webhook": webhook.check_spec,
    "shell": shell.check_spec,
    "kubernetes": kubernetes.check_spec,
    "pagerduty": pagerduty.check_spec,
}

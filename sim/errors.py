"""Errors raised by the simulator: one root, a small flat tree."""

from __future__ import annotations


class SimError(Exception):
    """Root of every error the simulator raises on purpose; its message is meant for a person."""


class TopologyError(SimError):
    """A topology file or name cannot be used; the message names the file and what is wrong."""


class ScenarioError(SimError):
    """A fault scenario names an unknown fault kind or a service it cannot apply to."""


class ActionError(SimError):
    """An action index, id or target is outside what the environment offers."""


class PolicyError(SimError):
    """A reference policy name is unknown."""

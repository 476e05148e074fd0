"""The policy shipped in the package: ``policy.pt``, ``artifact.json`` and its record ``bundle.json`` (docs/policy.md)."""

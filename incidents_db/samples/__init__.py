"""Sample incident history shipped with remediate (used by `remediate demo`)."""

"""Verified remediation: judge an executed action from what followed it (docs/verification.md)."""

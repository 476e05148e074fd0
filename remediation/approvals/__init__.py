"""The approval workflow: a persisted state machine from proposal to a single, audited execution."""

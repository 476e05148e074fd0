"""Postmortems: what a draft says about an incident, and the one postmortem row kept per incident."""

"""Versioned policy artifacts and their life cycle in the store's ``policy_versions`` table."""

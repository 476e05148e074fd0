"""Alembic migrations of the store, shipped inside the package so `remediate db upgrade` finds them."""

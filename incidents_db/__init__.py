"""Remembering: SQLAlchemy models, migrations, the store API, history import and trajectory mining."""

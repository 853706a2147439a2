"""Alembic migrations: the only way steadypay's schema changes."""

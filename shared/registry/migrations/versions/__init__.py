"""Alembic revisions of the registry schema (loaded by Alembic from this folder, never imported)."""

"""Alembic's scripts for the application database (``env.py``, ``versions/``); run through
``kindly.store.migrate``, which configures Alembic in code."""

"""Session history for analysts: filters, grouped dose aggregates, exports and synthetic history.

This package sits beside ``sessions/`` above ``store/``: it reads the session table and its per-session
dose summary with SQLAlchemy expressions that run unchanged on SQLite and PostgreSQL, and it is shared
by the API routes (``api/routes/analytics.py``, the session list) and the command line (``export``,
``seed``), so a filter or a group key means the same thing everywhere.
"""

"""Database layer: SQLAlchemy models, engine/session setup, embedded Postgres default."""

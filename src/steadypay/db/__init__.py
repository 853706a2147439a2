"""Database plumbing: connection pool, migrations, embedded PostgreSQL.

- :mod:`~steadypay.db.router` — the database seam: :class:`DatabaseRouter` answers which pool a
  read or write gets, at which :class:`Consistency`.
- :mod:`~steadypay.db.pool` — the asyncpg pool (:class:`Database`, :func:`create_database`) and
  the translation of driver errors into ours.
- :mod:`~steadypay.db.metrics` — the pool gauges.
- :mod:`~steadypay.db.sqlscript` — splitting a SQL script into statements (for migrations).
- :mod:`~steadypay.db.migrate` — running the alembic migrations programmatically.
- :mod:`~steadypay.db.embedded` — a local PostgreSQL cluster from the ``pgserver`` wheel's
  binaries; :mod:`~steadypay.db._pgproc` is its process plumbing (private).

Offered to other packages: the names below. To keep this package light (it is imported by every
process and by the migrations), alembic and the embedded cluster are not imported here: import
``upgrade`` from :mod:`steadypay.db.migrate`, and ``EmbeddedPostgres``,
``EmbeddedPostgresError`` and ``default_bin_dir`` from :mod:`steadypay.db.embedded`.
"""

from steadypay.db.metrics import DB_POOL_CONNECTIONS
from steadypay.db.pool import (
    DRIVER_ERRORS,
    PUBLISH_EVERY_S,
    Database,
    PoolOptions,
    create_database,
    publish_pool_stats,
    translate,
)
from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.db.sqlscript import split_statements

__all__ = [
    "DB_POOL_CONNECTIONS",
    "DRIVER_ERRORS",
    "PUBLISH_EVERY_S",
    "Consistency",
    "Database",
    "DatabaseRouter",
    "PoolOptions",
    "create_database",
    "publish_pool_stats",
    "split_statements",
    "translate",
]

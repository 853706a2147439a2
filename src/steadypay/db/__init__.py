"""Database plumbing: connection pool, migrations, embedded PostgreSQL."""

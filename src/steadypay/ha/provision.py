"""The application's role and database on the cluster, and the URLs to reach them.

The primary gets a ``steadypay`` role (LOGIN, password from ``secrets.json``) owning the
``steadypay`` database, so that :func:`steadypay.db.migrate.upgrade` can run on it. A client
library that tries the hosts of a multi-host URL in turn (asyncpg does) gives up on the first
host that answers "database does not exist": so the database is not handed out until every
member has replayed its creation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from steadypay.db._pgproc import EmbeddedPostgresError, clean_env, run
from steadypay.ha.layout import APP_USER, SUPERUSER, ClusterError, ClusterSecrets

_POLL_S = 0.2

# The password comes from the environment, not from argv: `ps` shows argv to everyone.
_CREATE = (
    "\\getenv pw APP_ROLE_PASSWORD\n"
    "SELECT format('CREATE ROLE %I LOGIN', :'role')"
    " WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\\gexec\n"
    "SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw')\\gexec\n"
    "SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')"
    " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec\n"
)
_PSQL_OPTIONS = ("--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1")


def ensure_app_database(
    bin_dir: Path, host: str, port: int, secrets: ClusterSecrets, database: str, timeout: float
) -> None:
    """On the primary at ``port``: create the role and ``database`` unless they exist, and set
    the role's password to the one in ``secrets``."""
    argv: list[str | Path] = [
        bin_dir / "psql",
        *_PSQL_OPTIONS,
        f"--set=role={APP_USER}",
        f"--set=db={database}",
        f"--host={host}",
        f"--port={port}",
        f"--username={SUPERUSER}",
        "--dbname=postgres",
    ]
    env = clean_env(
        PGPASSWORD=secrets.superuser, PGCONNECT_TIMEOUT="10", APP_ROLE_PASSWORD=secrets.app
    )
    try:
        run(argv, input_text=_CREATE, env=env, timeout=timeout)
    except EmbeddedPostgresError as exc:
        raise ClusterError(f"could not create {database!r} on port {port}: {exc}") from exc


def wait_until_everywhere(
    bin_dir: Path,
    host: str,
    ports: Sequence[int],
    secrets: ClusterSecrets,
    database: str,
    deadline: float,
) -> None:
    """Wait until the application role can connect to ``database`` on every member."""
    env = clean_env(PGPASSWORD=secrets.app, PGCONNECT_TIMEOUT="5")
    for port in ports:
        argv: list[str | Path] = [
            bin_dir / "psql",
            *_PSQL_OPTIONS,
            f"--host={host}",
            f"--port={port}",
            f"--username={APP_USER}",
            f"--dbname={database}",
            "--command=SELECT 1",
        ]
        while (result := run(argv, env=env, timeout=15, check=False)).returncode != 0:
            if time.monotonic() >= deadline:
                said = result.stderr.strip()[-500:]
                raise ClusterError(f"{database!r} is not reachable on port {port}: {said}")
            time.sleep(_POLL_S)


def multi_host_dsn(host: str, ports: Sequence[int], user: str, password: str, database: str) -> str:
    """A libpq URL over every member that connects to the primary only. The hosts go in
    the query (``host=a,b&port=1,2``) rather than the authority (``a:1,b:2``): libpq,
    asyncpg and SQLAlchemy (hence alembic) all read that form."""
    hosts = ",".join(host for _ in ports)
    query = f"host={hosts}&port={','.join(map(str, ports))}&target_session_attrs=read-write"
    return f"postgresql://{_credentials(user, password)}@/{quote(database, safe='')}?{query}"


def member_dsn(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    target_session_attrs: str | None = None,
) -> str:
    url = f"postgresql://{_credentials(user, password)}@{host}:{port}/{quote(database, safe='')}"
    return url + (f"?target_session_attrs={target_session_attrs}" if target_session_attrs else "")


def _credentials(user: str, password: str) -> str:
    return f"{quote(user, safe='')}:{quote(password, safe='')}"

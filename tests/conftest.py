"""Shared fixtures: one real PostgreSQL per test session, migrated, audited at the end.

With ``STEADYPAY_TEST_DATABASE_URL`` set, a fresh database is created on that server for the
session and dropped after. Without it (CI, a fresh laptop), a throwaway embedded cluster is
started from the pip-installed PostgreSQL binaries, exactly the path `make run` uses.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from steadypay.db.embedded import EmbeddedPostgres
from steadypay.db.migrate import upgrade
from steadypay.ledger.audit import audit
from steadypay.observability.logging import configure_logging


@pytest.fixture(scope="session", autouse=True)
def _product_logging() -> None:
    """The product's log configuration, as every process has it. (structlog's default renders
    an exception with rich, locals included: seconds per 500 under load, on the event loop.)"""
    configure_logging("info", json_lines=False, service="test")


# Durability is not under test here; the e2e test runs the real defaults.
FAST_TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin_sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL of a PostgreSQL server for the session (the ``postgres`` database)."""
    external = os.environ.get("STEADYPAY_TEST_DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    cluster = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), settings=FAST_TEST_SETTINGS)
    cluster.init()
    cluster.start()
    try:
        yield cluster.superuser_url("postgres")
    finally:
        cluster.stop(mode="immediate")


@contextmanager
def fresh_database(server_url: str, prefix: str = "steadypay_test") -> Iterator[str]:
    """Create a migrated database on the server; yield its URL; drop it after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin_sql(server_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def audit_database(url: str) -> dict[str, list[dict[str, object]]]:
    """The violated checks of ``steadypay ledger check`` on ``url`` (empty when clean)."""
    conn = await asyncpg.connect(url)
    try:
        report = await audit(conn)
    finally:
        await conn.close()
    return {c.name: c.sample for c in report.checks if not c.ok}


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """The session's migrated database. Whatever the tests did through the product, the ledger
    must audit clean afterwards: a violation fails the session."""
    with fresh_database(pg_server_url) as url:
        yield url
        broken = asyncio.run(audit_database(url))
        assert not broken, f"ledger invariants violated after the test session: {broken}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent

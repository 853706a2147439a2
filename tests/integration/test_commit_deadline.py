"""A COMMIT waiting for a standby is bounded by the deadline and never cancelled.

Real PostgreSQL made to wait as synchronous replication does: ``synchronous_standby_names``
names a standby that never connects, so every COMMIT with ``synchronous_commit = on`` waits.
The API must answer 503 ``commit_outcome_unknown`` in time, the payment must stay invisible
(a cancelled wait would have made it visible without a second copy), and once the standby
"answers" (the setting is lifted) the commit completes and a retry with the same key replays
its 201.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.config import Settings
from tests.api_client import Api, new_key
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, serve


@pytest.fixture(scope="module")
def commit_database_url(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url, "steadypay_commit") as url:
        name = make_url(url).database
        asyncio.run(_sql(pg_server_url, f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
        yield url


async def _sql(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _waiting_for_a_standby(server_url: str, waiting: bool) -> None:
    names = "'ghost_standby'" if waiting else "''"
    await _sql(
        server_url,
        f"ALTER SYSTEM SET synchronous_standby_names = {names}",
        "SELECT pg_reload_conf()",
    )


@pytest.fixture
async def short_deadline_api(settings: Settings, commit_database_url: str) -> AsyncIterator[Api]:
    own = settings.model_copy(
        update={"database_url": SecretStr(commit_database_url), "db_commit_timeout_ms": 500}
    )
    container = await bootstrap.build(own)
    try:
        async with (
            serve(create_app(own, container)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield Api(http, ADMIN_KEY)
    finally:
        await container.close()


async def test_an_unconfirmed_commit_is_503_invisible_then_replayed(
    short_deadline_api: Api, pg_server_url: str, commit_database_url: str
) -> None:
    api = short_deadline_api
    _, source = await api.funded_wallet("10.00")
    _, target = await api.funded_wallet("")
    key = new_key()
    await _waiting_for_a_standby(pg_server_url, True)
    try:
        started = asyncio.get_running_loop().time()
        unknown = await api.transfer(source["id"], target["id"], "4.00", idem=key)
        waited = asyncio.get_running_loop().time() - started
        assert unknown.status_code == 503, unknown.text
        assert unknown.json()["error"]["code"] == "commit_outcome_unknown"
        assert "retry-after" in unknown.headers
        assert waited < 5, waited  # the deadline (0.5 s), not the standby, bounded the wait
        # Not cancelled: not visible to anyone while no standby has it.
        observer = await asyncpg.connect(commit_database_url, timeout=10)
        try:
            balance = await observer.fetchval(
                "SELECT balance FROM wallets WHERE id = $1", source["id"]
            )
            assert balance == 1000
        finally:
            await observer.close()
    finally:
        await _waiting_for_a_standby(pg_server_url, False)
    # The standby "answered": the commit completes by itself, and the retry learns it.
    replayed = None
    for _ in range(100):
        replayed = await api.transfer(source["id"], target["id"], "4.00", idem=key)
        if replayed.status_code == 201:
            break
        assert replayed.status_code in (409, 503), replayed.text  # still settling
        await asyncio.sleep(0.1)
    assert replayed is not None
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert await api.balance(source["id"]) == "6.00"
    assert await api.balance(target["id"]) == "4.00"

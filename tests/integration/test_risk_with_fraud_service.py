"""The payment API with a real fraud service on loopback: verdicts come from the service,
and a replayed request never asks it again (a retry must not count toward velocity)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.config import Settings
from tests.api_client import Api, new_key
from tests.integration.conftest import serve


@pytest.fixture
async def api_with_fraud(settings: Settings) -> AsyncIterator[tuple[Api, bootstrap.Container]]:
    async with serve(create_fraud_app(settings)) as fraud_url:
        wired = settings.model_copy(update={"fraud_url": fraud_url})
        container = await bootstrap.build(wired)
        try:
            async with (
                serve(create_app(wired, container)) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield Api(http, settings.admin_key.get_secret_value()), container  # type: ignore[union-attr]
        finally:
            await container.close()


async def test_service_verdicts_and_no_second_check_on_replay(
    api_with_fraud: tuple[Api, bootstrap.Container],
) -> None:
    api, container = api_with_fraud
    alice, a = await api.funded_wallet("100.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    first = await api.transfer(a["id"], b["id"], "5.00", idem=key)
    assert first.status_code == 201, first.text
    assert first.json()["risk"]["source"] == "service"
    assert isinstance(first.json()["risk"]["score"], int)
    again = await api.transfer(a["id"], b["id"], "5.00", idem=key)
    assert again.headers["idempotent-replayed"] == "true"
    async with container.db.connection() as conn:
        checks = await conn.fetchval(
            "SELECT count(*) FROM fraud.checks WHERE sender_user_id = $1::uuid", alice["id"]
        )
    assert checks == 1

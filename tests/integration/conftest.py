"""Integration fixtures: the product's container on the session database, and the API served
by a real uvicorn on a loopback port, reached over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.config import Environment, Settings
from tests.api_client import Api

ADMIN_KEY = "test-admin-key-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        env=Environment.TEST,
        database_url=database_url,
        admin_key=ADMIN_KEY,
        db_pool_max_size=40,
        # Nothing listens on these: the session runs with both services down (fallback risk
        # rules, notifications waiting in the outbox). Tests that need them start their own.
        fraud_url=f"http://127.0.0.1:{free_port()}",
        notification_url=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[bootstrap.Container]:
    built = await bootstrap.build(settings)
    try:
        yield built
    finally:
        await built.close()


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port; yield its base URL."""
    port = free_port()
    # Idle keep-alive connections outlive the tests' clients' (httpx keeps them 5 s, which
    # is uvicorn's default too: a request sent on a connection the server is closing at that
    # moment fails with ReadError on a loaded machine).
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def base_url(settings: Settings, container: bootstrap.Container) -> AsyncIterator[str]:
    async with serve(create_app(settings, container)) as url:
        yield url


@pytest.fixture(scope="session")
async def api(base_url: str) -> AsyncIterator[Api]:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as http:
        yield Api(http, ADMIN_KEY)

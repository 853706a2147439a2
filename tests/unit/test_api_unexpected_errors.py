"""A bug still answers with our error body and the request id (no I/O: in-process ASGI)."""

from __future__ import annotations

import httpx

from steadypay.bootstrap.api import create_app
from steadypay.config import Settings


async def test_unhandled_exception_is_a_500_with_the_request_id() -> None:
    app = create_app(Settings(database_url="postgresql://unused/none", admin_key="k" * 40))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/boom", headers={"X-Request-Id": "trace-12345678"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "trace-12345678"
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error",
            "param": None,
            "request_id": "trace-12345678",
        }
    }

"""``ReliableServiceClient``: an httpx client for one named dependency, every call through its
pipeline (the seed's class, done right).

- Connection pooling with explicit connect/read/write/pool timeouts; the attempt's timeout
  (``min(attempt timeout, time left)``) caps each request.
- A request is retried only if it is idempotent: a safe method (GET, HEAD, OPTIONS), or one
  carrying an ``Idempotency-Key`` (the client sends the same key on every attempt).
- Each attempt tells the callee how long it has left in ``X-Deadline-Ms``.
- httpx's exceptions never leave this module: timeouts become ``DependencyTimeout``, connection
  trouble and 5xx ``DependencyFailure`` (with the server's ``Retry-After``). A 4xx is the
  caller's business: it is returned, not raised, and does not count against the dependency.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from steadypay.errors import DependencyFailure, DependencyTimeout
from steadypay.resilience.deadline import DEADLINE_HEADER
from steadypay.resilience.pipeline import Attempt, Pipeline
from steadypay.resilience.retry import parse_retry_after, seconds_header

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReliableServiceClient:
    def __init__(
        self,
        base_url: str,
        pipeline: Pipeline,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout_s: float = 1.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.dependency = pipeline.dependency
        self.pipeline = pipeline
        limit = pipeline.config.bulkhead_max_concurrent
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(pipeline.config.attempt_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            headers=dict(headers or {}),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        method = method.upper()
        sent_headers = dict(headers or {})
        if idempotency_key is not None:
            sent_headers["Idempotency-Key"] = idempotency_key
        idempotent = method in SAFE_METHODS or idempotency_key is not None

        async def attempt(info: Attempt) -> httpx.Response:
            sent_headers[DEADLINE_HEADER] = seconds_header(info.deadline.remaining())
            try:
                response = await self._http.request(
                    method, path, json=json, headers=sent_headers, timeout=info.timeout_s
                )
            except httpx.TimeoutException as exc:
                raise DependencyTimeout(dependency=self.dependency) from exc
            except httpx.TransportError as exc:
                raise DependencyFailure(
                    f"{type(exc).__name__} calling {self.dependency}", dependency=self.dependency
                ) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise DependencyFailure(
                    f"{self.dependency} answered {response.status_code}",
                    dependency=self.dependency,
                    status_code=response.status_code,
                    server_retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
                )
            return response

        return await self.pipeline.call(attempt, idempotent=idempotent, timeout_s=timeout_s)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

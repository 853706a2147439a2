"""``ReliableServiceClient``: an HTTP client for one named dependency, every call through its
pipeline (the seed's class, done right).

- Connection pooling (keep-alive, at most the bulkhead's limit of connections) with explicit
  connect and per-attempt timeouts; the attempt's timeout (``min(attempt timeout, time
  left)``) caps each request, body included.
- A request is retried only if it is idempotent: a safe method (GET, HEAD, OPTIONS), or one
  carrying an ``Idempotency-Key`` (the client sends the same key on every attempt).
- Each attempt tells the callee how long it has left in ``X-Deadline-Ms``, and carries the
  current request's ``X-Request-Id`` so one payment can be followed through every service's logs.
- The HTTP library's exceptions never leave this module: timeouts become ``DependencyTimeout``,
  connection trouble and 5xx ``DependencyFailure`` (with the server's ``Retry-After``), and so
  does 401/403: the dependency refused *our* credentials (a misconfigured service key), which
  fails every caller alike, so it counts against the breaker (not retried). Any other 4xx is
  about the caller's input, the caller's business: it is returned (a
  :class:`ServiceResponse`, body read), not raised, not retried, and counts as a success (the
  dependency answered); the adapter turns it into that caller's error (its 400
  ``validation_error`` into our ``ValidationError`` with its message and param), never into a
  failure that would open a breaker every other user shares. 429 is raised (retryable) but
  not counted either.

It is built on aiohttp rather than httpx (which the test suite and other clients use): on the
payment path every transfer makes one call, and aiohttp's client costs about a quarter of
httpx's CPU per request (decision 0006).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from steadypay.errors import DependencyFailure, DependencyTimeout
from steadypay.hooks import NO_FAULTS, FaultHook
from steadypay.observability.context import REQUEST_ID_HEADER, current_request_id
from steadypay.resilience.deadline import DEADLINE_HEADER
from steadypay.resilience.pipeline import CREDENTIALS_REFUSED, Attempt, Pipeline
from steadypay.resilience.retry import parse_retry_after, seconds_header


@dataclass(frozen=True, slots=True)
class ServiceResponse:
    """A dependency's answer, body read."""

    status_code: int
    headers: Mapping[str, str]
    """Case-insensitive."""
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return jsonlib.loads(self.content)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEEPALIVE_S = 2.0


class ReliableServiceClient:
    def __init__(
        self,
        base_url: str,
        pipeline: Pipeline,
        *,
        connect_timeout_s: float = 1.0,
        headers: Mapping[str, str] | None = None,
        faults: FaultHook = NO_FAULTS,
    ) -> None:
        self.dependency = pipeline.dependency
        self._faults = faults
        self.pipeline = pipeline
        self._base_url = base_url.rstrip("/")
        self._connect_timeout_s = connect_timeout_s
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            limit = self.pipeline.config.bulkhead_max_concurrent
            self._session = aiohttp.ClientSession(
                # An idle connection is closed by us before the server's keep-alive timeout
                # (uvicorn's default is 5 s) can close it under a request we are sending.
                connector=aiohttp.TCPConnector(
                    limit=limit, limit_per_host=limit, keepalive_timeout=KEEPALIVE_S
                ),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.pipeline.config.attempt_timeout_s,
                    sock_connect=self._connect_timeout_s,
                ),
                json_serialize=_compact_json,
                auto_decompress=True,
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> ServiceResponse:
        method = method.upper()
        url = self._base_url + path
        sent_headers = dict(headers or {})
        request_id = current_request_id()
        if request_id is not None:
            sent_headers.setdefault(REQUEST_ID_HEADER, request_id)
        if idempotency_key is not None:
            sent_headers["Idempotency-Key"] = idempotency_key
        idempotent = method in SAFE_METHODS or idempotency_key is not None

        async def attempt(info: Attempt) -> ServiceResponse:
            await self._faults.inject("dependency", self.dependency)  # chaos, when switched on
            sent_headers[DEADLINE_HEADER] = seconds_header(info.deadline.remaining())
            timeout = aiohttp.ClientTimeout(
                total=info.timeout_s, sock_connect=min(info.timeout_s, self._connect_timeout_s)
            )
            try:
                async with self._http().request(
                    method, url, json=json, headers=sent_headers, timeout=timeout
                ) as answer:
                    response = ServiceResponse(
                        answer.status, answer.headers.copy(), await answer.read()
                    )
            except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
                raise DependencyTimeout(dependency=self.dependency) from exc
            except aiohttp.ClientError as exc:
                raise DependencyFailure(
                    f"{type(exc).__name__} calling {self.dependency}", dependency=self.dependency
                ) from exc
            if response.status_code in CREDENTIALS_REFUSED:
                raise DependencyFailure(
                    f"{self.dependency} refused our credentials ({response.status_code}): "
                    "check the service key in the settings",
                    dependency=self.dependency,
                    status_code=response.status_code,
                )
            if response.status_code >= 500 or response.status_code == 429:
                raise DependencyFailure(
                    f"{self.dependency} answered {response.status_code}",
                    dependency=self.dependency,
                    status_code=response.status_code,
                    server_retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
                )
            return response

        return await self.pipeline.call(attempt, idempotent=idempotent, timeout_s=timeout_s)

    async def get(self, path: str, **kwargs: Any) -> ServiceResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ServiceResponse:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _compact_json(value: Any) -> str:
    return jsonlib.dumps(value, separators=(",", ":"))

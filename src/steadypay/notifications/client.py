"""The payment API's adapter for the notification service's internal API.

Every call goes through the dependency's ``ReliableServiceClient`` (deadline, bulkhead, retries,
breaker), carries the internal service key as bearer, and POSTs carry an Idempotency-Key so
the pipeline may retry them. The service's answers become our errors here: its 4xx errors keep
their meaning and are the caller's (not found, invalid URL with its param, key reused; any
other 400 is a ``validation_error`` with the service's message), never counted against the
shared breaker; a refusal of our credentials (401/403), timeouts and 5xx are the dependency
failing (503, raised by the client itself, and counted); any other unexpected answer is a 503
too (not counted: the service answered).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from steadypay.errors import (
    DependencyFailure,
    IdempotencyKeyReuse,
    NotFound,
    SteadypayError,
    ValidationError,
)
from steadypay.resilience.client import ReliableServiceClient, ServiceResponse

DEPENDENCY = "notifications"
ENDPOINTS = "/internal/webhook_endpoints"

_ERRORS: dict[str, type[SteadypayError]] = {
    "validation_error": ValidationError,
    "not_found": NotFound,
    "idempotency_key_reuse": IdempotencyKeyReuse,
}


class NotificationsClient:
    def __init__(self, client: ReliableServiceClient, internal_key: str) -> None:
        """``internal_key``: the first of STEADYPAY_INTERNAL_KEYS (``Settings.internal_key``)."""
        self._client = client
        self._auth = {"Authorization": f"Bearer {internal_key}"}

    async def create_endpoint(
        self, user_id: UUID, url: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        response = await self._client.post(
            ENDPOINTS,
            json={"user_id": str(user_id), "url": url},
            headers=self._auth,
            idempotency_key=idempotency_key,
        )
        return self._body(response, 201)

    async def rotate_secret(
        self, endpoint_id: UUID, *, user_id: UUID | None, idempotency_key: str
    ) -> dict[str, Any]:
        query = _query(user_id=user_id)
        response = await self._client.post(
            f"{ENDPOINTS}/{endpoint_id}/rotate_secret{query}",
            headers=self._auth,
            idempotency_key=idempotency_key,
        )
        return self._body(response, 200)

    async def deliveries(
        self,
        endpoint_id: UUID,
        *,
        user_id: UUID | None,
        limit: int,
        starting_after: UUID | None,
    ) -> dict[str, Any]:
        query = _query(user_id=user_id, limit=limit, starting_after=starting_after)
        response = await self._client.get(
            f"{ENDPOINTS}/{endpoint_id}/deliveries{query}", headers=self._auth
        )
        return self._body(response, 200)

    def _body(self, response: ServiceResponse, expected: int) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == expected and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message, param = str(error.get("message") or ""), error.get("param")
            param = param if isinstance(param, str) else None
            if error.get("code") in _ERRORS:
                raise _ERRORS[error["code"]](message or None, param=param)
            if response.status_code == 400:  # about the caller's input, whatever its code
                raise ValidationError(message or None, param=param)
        raise DependencyFailure(
            f"{DEPENDENCY} answered {response.status_code} unexpectedly",
            dependency=DEPENDENCY,
            status_code=response.status_code,
        )


def _query(**params: object) -> str:
    present = {k: str(v) for k, v in params.items() if v is not None}
    return "?" + urlencode(present) if present else ""

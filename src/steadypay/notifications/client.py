"""The payment API's adapter for the notification service's internal API.

Every call goes through the dependency's ``ReliableServiceClient`` (deadline, bulkhead, retries,
breaker), carries the admin key as bearer, and POSTs carry an Idempotency-Key so the pipeline
may retry them. The service's answers become our errors here: its 4xx errors keep their
meaning (not found, invalid URL, key reused); a refusal of our credentials or any other
unexpected answer is the dependency failing (503), as are timeouts and 5xx (raised by the
client itself).
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
    def __init__(self, client: ReliableServiceClient, admin_key: str) -> None:
        self._client = client
        self._auth = {"Authorization": f"Bearer {admin_key}"}

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
        if isinstance(error, dict) and error.get("code") in _ERRORS:
            raise _ERRORS[error["code"]](str(error.get("message") or ""), param=error.get("param"))
        raise DependencyFailure(
            f"{DEPENDENCY} answered {response.status_code} unexpectedly",
            dependency=DEPENDENCY,
            status_code=response.status_code,
        )


def _query(**params: object) -> str:
    present = {k: str(v) for k, v in params.items() if v is not None}
    return "?" + urlencode(present) if present else ""

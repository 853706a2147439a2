"""Turning use-case results into HTTP responses, and the renderer whose output is stored.

:func:`render_transfer_outcome` makes the response stored with an idempotency key and replayed
byte for byte. The ledger calls it inside the transaction that stores it, so it is a pure
function of its arguments: what it needs from the request (the request id) is bound beforehand,
in the request's own context, by :func:`transfer_renderer`. (A group-commit batch runs in the
context of whichever request started it; read there, the request id would be another's.) See
docs/decisions/0003-ledger-write-path-and-idempotency.md, "Presentation outside the lock".
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

from steadypay import errors as e
from steadypay.http.errors import render_error, status_for
from steadypay.http.responses import JSON, json_response
from steadypay.idempotency.domain import StoredResponse
from steadypay.ledger.domain import FailureCode, Transfer
from steadypay.ledger.service import (
    BatchResult,
    Executed,
    KeyReused,
    Outcome,
    Renderer,
    Replayed,
)
from steadypay.ledger.views import transfer_json

FAILURE_ERRORS: dict[FailureCode, type[e.SteadypayError]] = {
    FailureCode.INSUFFICIENT_FUNDS: e.InsufficientFunds,
    FailureCode.CURRENCY_MISMATCH: e.CurrencyMismatch,
    FailureCode.WALLET_NOT_FOUND: e.WalletNotFound,
    FailureCode.BALANCE_LIMIT_EXCEEDED: e.BalanceLimitExceeded,
}

NO_REQUEST_ID = "req_unknown"
"""What :func:`steadypay.http.context.request_id` says outside a request."""


def render_transfer_outcome(transfer: Transfer, request_id: str = NO_REQUEST_ID) -> StoredResponse:
    """201 with the transfer, or the business error (422/404) carrying the failed transfer's id.

    What this returns is stored with the idempotency key and replayed byte for byte. Pure: no
    I/O, no context read (it runs while the ledger holds the wallets' locks).
    """
    if transfer.failure_code is None:
        return StoredResponse(201, json.dumps(transfer_json(transfer), separators=(",", ":")))
    error = FAILURE_ERRORS[transfer.failure_code](
        param=transfer.failure_param, details={"transfer_id": str(transfer.id)}
    )
    return StoredResponse(status_for(error), render_error(error, request_id))


def transfer_renderer(request_id: str) -> Renderer:
    """The renderer of one request's transfer outcomes, bound to its request id; call it in the
    request's context (``transfer_renderer(steadypay.http.context.request_id())``)."""

    def render(transfer: Transfer) -> StoredResponse:
        return render_transfer_outcome(transfer, request_id)

    return render


def outcome_response(outcome: Outcome) -> Response:
    if isinstance(outcome, KeyReused):
        raise e.IdempotencyKeyReuse(param="Idempotency-Key")
    if isinstance(outcome, Replayed):
        stored, headers = outcome.response, {"Idempotent-Replayed": "true"}
    else:
        assert isinstance(outcome, Executed)
        assert outcome.response is not None
        stored, headers = outcome.response, {}
    return Response(stored.body, stored.status, headers=headers, media_type=JSON)


def _stored(outcome: Outcome) -> StoredResponse:
    if isinstance(outcome, Executed):
        assert outcome.response is not None
        return outcome.response
    assert isinstance(outcome, Replayed)
    return outcome.response


def _batch_item(index: int, stored: StoredResponse) -> dict[str, Any]:
    body = json.loads(stored.body or "{}")
    if stored.status < 300:
        return {"index": index, "status": body["status"], "transfer": body, "error": None}
    return {"index": index, "status": "failed", "transfer": None, "error": body["error"]}


def batch_response(result: BatchResult, *, atomic: bool) -> Response:
    """200 with each item's result in order (``Idempotent-Replayed`` if every item was a
    replay); or, for an atomic batch that was rolled back, 422 ``atomic_batch_failed`` naming
    the items that could not complete."""
    if not result.committed:
        items = []
        for index, outcome in enumerate(result.outcomes):
            item = _batch_item(index, _stored(outcome))
            if item["error"] is None:
                item = {"index": index, "status": "rolled_back", "transfer": None, "error": None}
            else:  # the failed transfer was rolled back too: its id names nothing
                item["error"] = {
                    k: v for k, v in item["error"].items() if k not in ("transfer_id", "request_id")
                }
            items.append(item)
        raise e.AtomicBatchFailed(details={"items": [i for i in items if i["error"]]})
    items = [_batch_item(i, _stored(o)) for i, o in enumerate(result.outcomes)]
    replayed = all(isinstance(o, Replayed) for o in result.outcomes)
    return json_response(
        {"atomic": atomic, "data": items},
        200,
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )

"""Turning ledger outcomes into HTTP responses, and the renderer whose output is stored."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

from steadypay import errors as e
from steadypay.api.context import request_id
from steadypay.api.errors import headers_for, render_error, status_for
from steadypay.idempotency.domain import StoredResponse
from steadypay.ledger.domain import FailureCode, Transfer
from steadypay.ledger.service import Executed, KeyReused, Outcome, Replayed
from steadypay.ledger.views import transfer_json

JSON = "application/json"

FAILURE_ERRORS: dict[FailureCode, type[e.SteadypayError]] = {
    FailureCode.INSUFFICIENT_FUNDS: e.InsufficientFunds,
    FailureCode.CURRENCY_MISMATCH: e.CurrencyMismatch,
    FailureCode.WALLET_NOT_FOUND: e.WalletNotFound,
    FailureCode.BALANCE_LIMIT_EXCEEDED: e.BalanceLimitExceeded,
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers=headers, media_type=JSON
    )


def render_transfer_outcome(transfer: Transfer) -> StoredResponse:
    """201 with the transfer, or the business error (422/404) carrying the failed transfer's id.

    What this returns is stored with the idempotency key and replayed byte for byte.
    """
    if transfer.failure_code is None:
        return StoredResponse(201, json.dumps(transfer_json(transfer), separators=(",", ":")))
    error = FAILURE_ERRORS[transfer.failure_code](
        param=transfer.failure_param, details={"transfer_id": str(transfer.id)}
    )
    return StoredResponse(status_for(error), render_error(error, request_id()))


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


def error_response(error: e.SteadypayError) -> Response:
    return Response(
        render_error(error, request_id()),
        status_for(error),
        headers=headers_for(error),
        media_type=JSON,
    )

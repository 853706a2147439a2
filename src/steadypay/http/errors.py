"""HTTP statuses for steadypay's errors, in one place, and the JSON error body.

Every class of :mod:`steadypay.errors` has an explicit entry (a unit test enforces it), so a new
error cannot silently become a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

from steadypay import errors as e

STATUS_BY_ERROR: dict[type[e.SteadypayError], int] = {
    e.SteadypayError: 500,
    e.ValidationError: 400,
    e.IdempotencyKeyRequired: 400,
    e.PayloadTooLarge: 413,
    e.AuthenticationError: 401,
    e.PermissionDenied: 403,
    e.ChaosForbidden: 403,
    e.RateLimited: 429,
    e.NotFound: 404,
    e.WalletNotFound: 404,
    e.Conflict: 409,
    e.WalletExists: 409,
    e.EmailTaken: 409,
    e.IdempotencyKeyInUse: 409,
    e.HoldNotPending: 409,
    e.BusinessRuleViolation: 422,
    e.InsufficientFunds: 422,
    e.CurrencyMismatch: 422,
    e.BalanceLimitExceeded: 422,
    e.IdempotencyKeyReuse: 422,
    e.AtomicBatchFailed: 422,
    e.ServiceUnavailable: 503,
    e.DatabaseUnavailable: 503,
    e.CommitOutcomeUnknown: 503,
    e.LedgerContention: 503,
    e.TransactionConflict: 503,
    e.DependencyUnavailable: 503,
    e.CircuitOpenError: 503,
    e.BulkheadFullError: 503,
    e.DependencyTimeout: 503,
    e.DependencyFailure: 503,
}


def status_for(error: e.SteadypayError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def headers_for(error: e.SteadypayError) -> dict[str, str]:
    if isinstance(error, e.ServiceUnavailable):
        seconds = error.retry_after_s if error.retry_after_s is not None else 60.0
        return {"Retry-After": str(max(1, math.ceil(seconds)))}
    if isinstance(error, e.AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, e.RateLimited):
        reset = max(1, math.ceil(error.retry_after_s))
        return {  # draft-ietf-httpapi-ratelimit-headers (-07) and RFC 9110's Retry-After
            "Retry-After": str(reset),
            "RateLimit-Policy": f"{error.limit};w={error.window_s}",
            "RateLimit": f"limit={error.limit}, remaining=0, reset={reset}",
        }
    return {}


def error_body(
    code: str, message: str, *, param: str | None, request_id: str, extra: dict[str, Any] | None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "param": param,
        "request_id": request_id,
    }
    error.update(extra or {})
    return {"error": error}


def render_error(error: e.SteadypayError, request_id: str) -> str:
    body = error_body(
        error.code, error.message, param=error.param, request_id=request_id, extra=error.details
    )
    return json.dumps(body, separators=(",", ":"))

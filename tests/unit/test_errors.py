"""Every error class maps to an HTTP status in one place, with a stable code."""

from __future__ import annotations

import json
import re

import asyncpg
import pytest

from steadypay import errors
from steadypay.db.pool import translate
from steadypay.http.errors import STATUS_BY_ERROR, headers_for, render_error, status_for

ALL = errors.all_error_classes()


def test_hierarchy_is_discovered() -> None:
    assert errors.InsufficientFunds in ALL
    assert errors.TransactionConflict in ALL
    assert len(ALL) == len(set(ALL))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_has_an_explicit_status(cls: type[errors.SteadypayError]) -> None:
    assert cls in STATUS_BY_ERROR, f"{cls.__name__} has no HTTP status in http/errors.py"
    assert status_for(cls()) == STATUS_BY_ERROR[cls]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_codes_are_stable_snake_case(cls: type[errors.SteadypayError]) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code)
    assert cls.default_message


def test_expected_conditions_are_never_500() -> None:
    for cls in ALL:
        if cls is not errors.SteadypayError:
            assert STATUS_BY_ERROR[cls] < 500 or issubclass(cls, errors.ServiceUnavailable)
    for cls in (errors.DatabaseUnavailable, errors.TransactionConflict, errors.LedgerContention):
        assert status_for(cls()) == 503
        assert headers_for(cls())["Retry-After"]


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.ValidationError, 400, "validation_error"),
        (errors.IdempotencyKeyRequired, 400, "idempotency_key_required"),
        (errors.AuthenticationError, 401, "unauthenticated"),
        (errors.PermissionDenied, 403, "forbidden"),
        (errors.NotFound, 404, "not_found"),
        (errors.WalletNotFound, 404, "not_found"),
        (errors.WalletExists, 409, "wallet_exists"),
        (errors.IdempotencyKeyInUse, 409, "idempotency_key_in_use"),
        (errors.InsufficientFunds, 422, "insufficient_funds"),
        (errors.CurrencyMismatch, 422, "currency_mismatch"),
        (errors.IdempotencyKeyReuse, 422, "idempotency_key_reuse"),
    ],
)
def test_contract_statuses(cls: type[errors.SteadypayError], status: int, code: str) -> None:
    assert (status_for(cls()), cls.code) == (status, code)


def test_error_body_shape() -> None:
    error = errors.InsufficientFunds(param="amount", details={"transfer_id": "t1"})
    body = json.loads(render_error(error, "req_1"))
    assert body == {
        "error": {
            "code": "insufficient_funds",
            "message": errors.InsufficientFunds.default_message,
            "param": "amount",
            "request_id": "req_1",
            "transfer_id": "t1",
        }
    }


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_dropped_database_connection_is_unavailable_not_a_500(driver_error: Exception) -> None:
    translated = translate(driver_error)
    assert isinstance(translated, errors.DatabaseUnavailable)
    assert status_for(translated) == 503


def test_a_serialization_failure_is_a_conflict_and_a_lock_timeout_contention() -> None:
    assert isinstance(translate(asyncpg.SerializationError()), errors.TransactionConflict)
    assert isinstance(translate(asyncpg.DeadlockDetectedError()), errors.TransactionConflict)
    assert isinstance(translate(asyncpg.LockNotAvailableError()), errors.LedgerContention)
    unexpected = ValueError("a bug")
    assert translate(unexpected) is unexpected

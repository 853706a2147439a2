"""The one error hierarchy of steadypay.

Every error a caller can see is one of these classes, each with a stable ``code``. Library
exceptions (asyncpg, httpx, ...) are translated where they enter our code with
``raise OurError(...) from exc``. HTTP status codes are mapped from these classes in one place,
:mod:`steadypay.http.errors`, and a unit test checks every class has a mapping.

    SteadypayError
    ├── ValidationError                  validation_error          (bad input, nothing changed)
    │   ├── IdempotencyKeyRequired       idempotency_key_required
    │   └── PayloadTooLarge              payload_too_large  (413: the body is over the limit)
    ├── AuthenticationError              unauthenticated
    ├── PermissionDenied                 forbidden
    ├── RateLimited                      rate_limited  (429, Retry-After and RateLimit headers)
    ├── NotFound                         not_found
    │   └── WalletNotFound               not_found     (a transfer named a missing wallet)
    ├── Conflict
    │   ├── WalletExists                 wallet_exists
    │   ├── EmailTaken                   email_taken
    │   ├── IdempotencyKeyInUse          idempotency_key_in_use
    │   └── HoldNotPending               hold_not_pending  (resolving an already-resolved hold)
    ├── BusinessRuleViolation            (the request was valid; the ledger refused it)
    │   ├── InsufficientFunds            insufficient_funds
    │   ├── CurrencyMismatch             currency_mismatch
    │   ├── BalanceLimitExceeded         balance_limit_exceeded
    │   └── IdempotencyKeyReuse          idempotency_key_reuse
    └── ServiceUnavailable               (an expected, transient condition: retry later)
        ├── DatabaseUnavailable          database_unavailable
        │   └── CommitOutcomeUnknown     commit_outcome_unknown  (a COMMIT not confirmed in time)
        ├── LedgerContention             ledger_busy
        │   └── TransactionConflict      ledger_busy   (deadlock/serialization; retried inside)
        └── DependencyUnavailable        dependency_unavailable  (an outbound call failed)
            ├── CircuitOpenError         circuit_open        (rejected at once, retry_after_s)
            ├── BulkheadFullError        bulkhead_full       (too many calls in flight)
            ├── DependencyTimeout        dependency_timeout  (attempt timeout or deadline)
            └── DependencyFailure        dependency_error    (connection refused/reset, 5xx)
"""

from __future__ import annotations

from typing import Any, ClassVar


class SteadypayError(Exception):
    """Base of every error steadypay reports to a caller."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.param = param
        self.details: dict[str, Any] = details or {}
        super().__init__(self.message)


class ValidationError(SteadypayError):
    code = "validation_error"
    default_message = "the request is invalid"


class IdempotencyKeyRequired(ValidationError):
    code = "idempotency_key_required"
    default_message = "this request moves money and needs an Idempotency-Key header (1-255 chars)"


class PayloadTooLarge(ValidationError):
    """The request body is larger than the route allows (``STEADYPAY_HTTP_MAX_*BODY_BYTES``);
    answered before the body is read in full. ``details`` carry ``max_body_bytes``."""

    code = "payload_too_large"
    default_message = "the request body is too large"


class AuthenticationError(SteadypayError):
    code = "unauthenticated"
    default_message = "a valid 'Authorization: Bearer <key>' header is required"


class PermissionDenied(SteadypayError):
    code = "forbidden"
    default_message = "you are not allowed to do this"


class ChaosForbidden(PermissionDenied):
    code = "chaos_forbidden"
    default_message = (
        "chaos is refused in production (set STEADYPAY_CHAOS_ALLOW_IN_PRODUCTION=true to allow)"
    )


class RateLimited(SteadypayError):
    """Too many requests for one API key, or too many unknown keys from one address."""

    code = "rate_limited"
    default_message = "too many requests: slow down and retry after the Retry-After seconds"

    def __init__(
        self,
        message: str | None = None,
        *,
        limit: int = 1,
        window_s: int = 1,
        retry_after_s: float = 1.0,
        which: str = "user_key",
    ) -> None:
        super().__init__(message, details={"limit": which})
        self.limit = limit
        self.window_s = window_s
        self.retry_after_s = retry_after_s


class NotFound(SteadypayError):
    code = "not_found"
    default_message = "no such object"


class WalletNotFound(NotFound):
    default_message = "no such wallet"


class Conflict(SteadypayError):
    code = "conflict"
    default_message = "the request conflicts with the current state"


class WalletExists(Conflict):
    code = "wallet_exists"
    default_message = "this user already has a wallet in this currency"


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "a user with this email already exists"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = (
        "a request with this Idempotency-Key is still being processed; retry in a moment"
    )


class HoldNotPending(Conflict):
    code = "hold_not_pending"
    default_message = "the transfer is not a pending review hold"


class BusinessRuleViolation(SteadypayError):
    code = "business_rule_violation"
    default_message = "the ledger refused this operation"


class InsufficientFunds(BusinessRuleViolation):
    code = "insufficient_funds"
    default_message = "the source wallet's available balance is too low"


class CurrencyMismatch(BusinessRuleViolation):
    code = "currency_mismatch"
    default_message = "the wallets' currencies do not match the requested currency"


class BalanceLimitExceeded(BusinessRuleViolation):
    code = "balance_limit_exceeded"
    default_message = "the operation would take a balance beyond the supported maximum"


class AtomicBatchFailed(BusinessRuleViolation):
    code = "atomic_batch_failed"
    default_message = (
        "a transfer of this atomic batch could not complete, so none of them happened; "
        "error.items says which and why"
    )


class IdempotencyKeyReuse(BusinessRuleViolation):
    code = "idempotency_key_reuse"
    default_message = (
        "this Idempotency-Key was already used with a different request; use a new key"
    )


class ServiceUnavailable(SteadypayError):
    code = "service_unavailable"
    default_message = "temporarily unavailable; retry with the same Idempotency-Key"

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = 1.0,
    ) -> None:
        super().__init__(message, param=param, details=details)
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    default_message = "the database is unavailable; retry with the same Idempotency-Key"


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The COMMIT was sent but not confirmed in time (synchronous replication waiting for a
    standby, or the primary lost mid-commit). It may yet commit, or may not: the same request
    with the same Idempotency-Key answers which, once the database knows."""

    code = "commit_outcome_unknown"
    default_message = (
        "the payment's commit could not be confirmed in time; retry with the same "
        "Idempotency-Key to learn its outcome"
    )


class LedgerContention(ServiceUnavailable):
    code = "ledger_busy"
    default_message = "the ledger is under contention; retry with the same Idempotency-Key"


class TransactionConflict(LedgerContention):
    """A deadlock or serialization failure. The ledger retries these within a budget; one only
    reaches a caller (as 503) when that budget is spent."""


class DependencyUnavailable(ServiceUnavailable):
    code = "dependency_unavailable"
    default_message = "a service steadypay depends on is unavailable"

    def __init__(self, message: str | None = None, *, dependency: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.dependency = dependency


class CircuitOpenError(DependencyUnavailable):
    """Rejected without calling: the dependency's circuit is open. ``retry_after_s`` is the time
    until the next trial call may go through (None when an operator forced it open)."""

    code = "circuit_open"
    default_message = "the dependency's circuit breaker is open"


class BulkheadFullError(DependencyUnavailable):
    code = "bulkhead_full"
    default_message = "too many calls to the dependency are in flight"


class DependencyTimeout(DependencyUnavailable):
    code = "dependency_timeout"
    default_message = "the dependency did not answer in time"


class DependencyFailure(DependencyUnavailable):
    """The dependency refused the connection, reset it, or answered 5xx."""

    code = "dependency_error"
    default_message = "the dependency failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        server_retry_after_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.server_retry_after_s = server_retry_after_s


def all_error_classes() -> list[type[SteadypayError]]:
    """Every class of the hierarchy, root included (for the mapping test and the docs)."""
    found: list[type[SteadypayError]] = []
    stack: list[type[SteadypayError]] = [SteadypayError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found

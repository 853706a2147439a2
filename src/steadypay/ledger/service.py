"""Ledger use cases. :meth:`Ledger.execute` is the write path's one primitive.

It takes a *batch* of transfer requests and returns one outcome per request, each identical to
what executing the requests one by one would give. A single transfer is a batch of one; a later
group-commit layer hands it many. In one database transaction it:

1. claims the requests' idempotency keys (waiting for an in-flight duplicate, then replaying);
2. locks every wallet involved, and the currencies' system accounts, in id order;
3. applies the commands in order (:func:`steadypay.ledger.domain.apply_batch`);
4. writes transfers (failed ones too), postings and balances, and the responses to replay.

Deadlocks and serialization failures roll the transaction back and are retried with jittered
exponential backoff, ``max_attempts`` in all; callers never see them unless the budget is spent
(then 503 ``ledger_busy``, safe to retry with the same key).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from steadypay.db.commit import in_transaction
from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.errors import (
    HoldNotPending,
    IdempotencyKeyInUse,
    LedgerContention,
    NotFound,
    TransactionConflict,
)
from steadypay.idempotency import repository as idempotency_sql
from steadypay.idempotency.domain import IdempotencyClaim, StoredResponse
from steadypay.identity.audit import AuditEntry, record_in
from steadypay.ledger import repository as sql
from steadypay.ledger import views
from steadypay.ledger.domain import (
    Account,
    HoldAction,
    Transfer,
    TransferCommand,
    TransferStatus,
    apply_batch,
    settle_hold,
)
from steadypay.ledger.group_commit import GroupCommit
from steadypay.observability.metrics import TRANSFER_AMOUNT, TRANSFERS
from steadypay.resilience.retry import full_jitter

Renderer = Callable[[Transfer], StoredResponse]
"""Makes the response stored with a request's idempotency key from its transfer's outcome.

The ledger knows nothing of how a response looks: the caller (the API, through ``payments``)
passes a renderer with each request. It is called inside the write transaction, while the
wallets' locks are held, so that the response commits with the transfer; it must therefore be
pure and fast -- no I/O, no awaiting, and no reading of per-request context (a group-commit
batch runs in the context of whichever call started it), everything it needs bound beforehand
(docs/decisions/0003-ledger-write-path-and-idempotency.md, "Presentation outside the lock").
"""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    command: TransferCommand
    claim: IdempotencyClaim | None = None
    render: Renderer | None = None
    """Builds the response to store for replay; required when ``claim`` is set."""


@dataclass(frozen=True, slots=True)
class Executed:
    transfer: Transfer
    response: StoredResponse | None


@dataclass(frozen=True, slots=True)
class Replayed:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was first used with a different request: nothing happened."""


Outcome = Executed | Replayed | KeyReused


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What :meth:`Ledger.execute_together` did. Not ``committed``: nothing happened, and
    ``outcomes`` say what each request would have been (``refused``: why it was rolled back)."""

    outcomes: list[Outcome]
    committed: bool
    refused: str | None = None


class _Abort(Exception):
    def __init__(self, outcomes: list[Outcome], reason: str) -> None:
        super().__init__(reason)
        self.outcomes = outcomes
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 0.005
    cap_s: float = 0.25

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt))."""
        return full_jitter(attempt, self.base_s, self.cap_s, rng)


class Ledger:
    def __init__(
        self,
        db: DatabaseRouter,
        *,
        retry: RetryPolicy | None = None,
        idempotency_ttl_hours: float = 24.0,
        hold_ttl: timedelta = timedelta(hours=72),
        max_concurrent_transactions: int = 8,
        group_commit: bool = True,
        group_commit_max_batch: int = 512,
        commit_timeout_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        # How long a COMMIT may wait (for a standby, with synchronous replication) before the
        # caller gets 503 commit_outcome_unknown; the commit itself is never cancelled.
        self._commit_timeout_s = commit_timeout_s
        # Write transactions in flight per process. Beyond a few, they only queue on the same
        # wallet locks while each lock holder waits for the event loop: bounding them keeps
        # lock hold times short and the latency tail flat (measured: issue 4's closing note).
        self._writers = asyncio.Semaphore(max_concurrent_transactions)
        self._retry = retry or RetryPolicy()
        self._ttl_hours = idempotency_ttl_hours
        self._hold_ttl = hold_ttl
        self._sleep = sleep
        self._rng = rng
        self.group: GroupCommit[WriteRequest, Outcome] | None = None
        if group_commit:
            self.group = GroupCommit(
                self._execute_now,
                max_in_flight=max_concurrent_transactions,
                max_batch=group_commit_max_batch,
            )

    async def execute(self, requests: Sequence[WriteRequest]) -> list[Outcome]:
        """The outcome of each request, as if executed one by one in order. With group commit,
        concurrent calls share transactions (:mod:`steadypay.ledger.group_commit`)."""
        if self.group is not None:
            return await self.group.submit(requests)
        return await self._execute_now(requests)

    async def execute_together(
        self, requests: Sequence[WriteRequest], *, atomic: bool
    ) -> BatchResult:
        """One transaction for exactly these requests (a batch API call), outside group
        commit. Nothing is committed if any request reuses its key with other details, nor,
        with ``atomic``, if any transfer does not complete (TigerBeetle's linked chains)."""

        def check(outcomes: list[Outcome]) -> None:
            if any(isinstance(o, KeyReused) for o in outcomes):
                raise _Abort(outcomes, "key_reused")
            if atomic and any(
                isinstance(o, Executed) and o.transfer.status is not TransferStatus.COMPLETED
                for o in outcomes
            ):
                raise _Abort(outcomes, "atomic_failed")

        try:
            return BatchResult(await self._execute_now(requests, check), committed=True)
        except _Abort as abort:
            return BatchResult(abort.outcomes, committed=False, refused=abort.reason)

    async def _execute_now(
        self,
        requests: Sequence[WriteRequest],
        check: Callable[[list[Outcome]], None] | None = None,
    ) -> list[Outcome]:
        """One transaction; ``check`` may raise to roll it back before it commits."""
        if not requests:
            return []
        for attempt in range(self._retry.max_attempts):
            try:

                async def work(conn: asyncpg.Connection) -> list[Outcome]:
                    outcomes = await self._execute_once(conn, requests)
                    if check is not None:
                        check(outcomes)
                    return outcomes

                async with self._writers:
                    outcomes = await in_transaction(
                        self._db.writer(), work, commit_timeout_s=self._commit_timeout_s
                    )
                count_transfers(o.transfer for o in outcomes if isinstance(o, Executed))
                return outcomes
            except TransactionConflict:
                if attempt + 1 < self._retry.max_attempts:
                    await self._sleep(self._retry.backoff(attempt, self._rng))
        raise LedgerContention()

    async def _execute_once(
        self, conn: asyncpg.Connection, requests: Sequence[WriteRequest]
    ) -> list[Outcome]:
        # Within one batch the first request with a key acts; later ones with the same key
        # are duplicates of it and replay its outcome.
        leaders: dict[tuple[str, str], int] = {}
        for index, request in enumerate(requests):
            if request.claim is not None:
                leaders.setdefault((request.claim.principal, request.claim.key), index)
        claims = [requests[i].claim for i in leaders.values()]
        mine: set[tuple[str, str]] = set()
        existing: dict[tuple[str, str], idempotency_sql.ExistingKey] = {}
        if claims:
            try:
                mine, existing = await idempotency_sql.claim(
                    conn, [c for c in claims if c is not None], self._ttl_hours
                )
            except asyncpg.exceptions.LockNotAvailableError as exc:
                raise IdempotencyKeyInUse() from exc

        runnable = [
            r
            for i, r in enumerate(requests)
            if r.claim is None or (_key(r.claim) in mine and leaders[_key(r.claim)] == i)
        ]
        transfers: dict[UUID, Transfer] = {}
        stored: dict[tuple[str, str], StoredResponse] = {}
        if runnable:
            commands = [r.command for r in runnable]
            wallet_ids = {w for c in commands for w in (c.from_wallet_id, c.to_wallet_id) if w}
            currencies = {c.currency for c in commands if c.from_wallet_id is None
                          or c.to_wallet_id is None}  # fmt: skip
            accounts, systems, now = await sql.lock_accounts(conn, wallet_ids, currencies)
            result = apply_batch(commands, accounts, systems, now, self._hold_ttl)
            transfers = {t.id: t for t in result.transfers}
            to_store: list[tuple[str, str, int, str | None, UUID | None]] = []
            for request in runnable:
                if request.claim is not None:
                    if request.render is None:
                        raise ValueError("a request with an idempotency claim needs a renderer")
                    response = request.render(transfers[request.command.id])
                    stored[_key(request.claim)] = response
                    to_store.append(
                        (request.claim.principal, request.claim.key, response.status,
                         response.body, request.command.id)
                    )  # fmt: skip
            events = [
                _announce(views.EVENT_FOR_STATUS[t.status], t, accounts, now)
                for t in result.transfers
            ]
            await sql.write_batch(
                conn, result.transfers, result.postings, result.accounts.values(), events, to_store
            )

        outcomes: list[Outcome] = []
        for index, request in enumerate(requests):
            claim = request.claim
            if claim is None:
                outcomes.append(Executed(transfers[request.command.id], None))
                continue
            key = _key(claim)
            leader = requests[leaders[key]]
            assert leader.claim is not None
            if key in mine:
                first_fingerprint, response = leader.claim.fingerprint, stored[key]
            else:
                previous = existing.get(key)
                if previous is None or previous.response.body is None:
                    # Inserted and released between our two statements, or a row without a
                    # response: treat as still in flight rather than guess.
                    raise IdempotencyKeyInUse()
                first_fingerprint, response = previous.fingerprint, previous.response
            if claim.fingerprint != first_fingerprint:
                outcomes.append(KeyReused())
            elif key in mine and leaders[key] == index:
                outcomes.append(Executed(transfers[request.command.id], response))
            else:
                outcomes.append(Replayed(response))
        return outcomes

    # --- holds (two-phase transfers) ------------------------------------------------------

    async def resolve_hold(
        self,
        transfer_id: UUID,
        action: HoldAction,
        by: str,
        audit: AuditEntry | None = None,
    ) -> Transfer:
        """Post (approve) or void (reject, expire) a hold, once; ``audit`` (an operator's
        decision) is written in the same transaction when the hold changes.

        Asking for the outcome a hold already has returns it unchanged (approving twice is
        idempotent); asking for a different one of a resolved hold is refused: a rejected or
        expired hold can never be posted, a posted one never voided.
        """
        for attempt in range(self._retry.max_attempts):
            try:

                async def work(conn: asyncpg.Connection) -> Transfer:
                    return await self._resolve_once(conn, transfer_id, action, by, audit)

                async with self._writers:
                    resolved = await in_transaction(
                        self._db.writer(), work, commit_timeout_s=self._commit_timeout_s
                    )
                count_transfers([resolved])
                return resolved
            except TransactionConflict:
                if attempt + 1 < self._retry.max_attempts:
                    await self._sleep(self._retry.backoff(attempt, self._rng))
        raise LedgerContention()

    async def _resolve_once(
        self,
        conn: asyncpg.Connection,
        transfer_id: UUID,
        action: HoldAction,
        by: str,
        audit: AuditEntry | None,
    ) -> Transfer:
        transfer = await sql.lock_transfer(conn, transfer_id)
        if transfer is None:
            raise NotFound("no such transfer", param="transfer_id")
        if transfer.hold_expires_at is None:
            raise HoldNotPending(
                "this transfer was never held for review",
                details={"status": transfer.status.value},
            )
        if transfer.status is action.outcome:
            return transfer
        if transfer.status is not TransferStatus.PENDING_REVIEW:
            raise HoldNotPending(
                f"transfer is {transfer.status.value}; only a pending_review hold can be "
                f"{action.outcome.value}",
                details={"status": transfer.status.value},
            )
        debit_id, credit_id = transfer.from_wallet_id, transfer.to_wallet_id
        assert debit_id is not None  # holds are transfers: both parties exist
        assert credit_id is not None
        accounts, _, now = await sql.lock_accounts(conn, (debit_id, credit_id), ())
        overdue = transfer.hold_expires_at <= now
        if action is HoldAction.EXPIRE and not overdue:
            return transfer  # not due yet: nothing to do
        if action is HoldAction.APPROVE and overdue:
            # Its time ran out before the expiry job got to it: it expires now, and the
            # caller sees an expired hold (HoldNotPending at the API), never a posting.
            action = HoldAction.EXPIRE
        settled = settle_hold(transfer, accounts[debit_id], accounts[credit_id], action, now, by)
        await sql.update_resolution(conn, settled.transfer)
        await sql.insert_postings(conn, settled.postings)
        await sql.update_balances(conn, settled.accounts)
        event_type = (
            views.APPROVED
            if action is HoldAction.APPROVE
            else views.EVENT_FOR_STATUS[settled.transfer.status]
        )
        await sql.insert_events(conn, [_announce(event_type, settled.transfer, accounts, now)])
        if audit is not None:
            outcome = settled.transfer.status.value
            await record_in(conn, replace(audit, details=audit.details | {"outcome": outcome}))
        return settled.transfer

    async def expire_due_holds(self, limit: int = 500) -> int:
        """Void every hold whose time ran out; returns how many. Safe to run in many workers."""
        async with self._db.writer().connection() as conn:
            due = await sql.due_holds(conn, limit)
        expired = 0
        for transfer_id in due:
            try:
                result = await self.resolve_hold(transfer_id, HoldAction.EXPIRE, "system:expiry")
            except HoldNotPending:
                continue  # approved or rejected meanwhile
            expired += result.status is TransferStatus.EXPIRED
        return expired

    async def pending_reviews(
        self, limit: int, starting_after: UUID | None
    ) -> tuple[list[Transfer], bool]:
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            rows = await sql.pending_reviews(conn, limit + 1, starting_after)
        return rows[:limit], len(rows) > limit


def count_transfers(transfers: Iterable[Transfer]) -> None:
    """Metrics of committed transfers (a replayed or unchanged one may be counted again: the
    counters count answers of the write path, the ledger is the record)."""
    for t in transfers:
        TRANSFERS.labels(t.type.value, t.status.value).inc()
        if t.status is TransferStatus.COMPLETED:
            TRANSFER_AMOUNT.labels(t.currency, t.type.value).inc(t.amount)


def _announce(
    event_type: str, transfer: Transfer, accounts: Mapping[UUID, Account], now: datetime
) -> tuple[UUID, str, UUID | None, dict[str, Any]]:
    owners = {
        str(accounts[w].user_id)
        for w in (transfer.from_wallet_id, transfer.to_wallet_id)
        if w is not None and w in accounts and accounts[w].user_id is not None
    }
    event_id, kind, payload = views.event(event_type, transfer, sorted(owners), now)
    return event_id, kind, transfer.id, payload


def _key(claim: IdempotencyClaim) -> tuple[str, str]:
    return claim.principal, claim.key

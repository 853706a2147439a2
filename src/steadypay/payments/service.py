"""Deposits, withdrawals, transfers, batches and holds: who may ask, and the one path into the
ledger. (Reads, with their authorisation, are :mod:`steadypay.payments.queries`.)

Every money-moving request carries an idempotency key; its fingerprint is the operation with
its normalised parameters, so a retried request replays and a different one reusing the key is
refused. Authorization reads the wallet outside the write transaction, which is sound because a
wallet's owner never changes and wallets are never deleted.

The response stored with a key is made by the caller's ``render`` (a
:data:`steadypay.ledger.service.Renderer`): a pure function, bound by the caller to everything
presentation needs (the request id), which the ledger calls on each transfer's outcome inside
the transaction that stores it. Nothing here knows HTTP.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from steadypay.errors import HoldNotPending, IdempotencyKeyReuse, PermissionDenied
from steadypay.idempotency.domain import IdempotencyClaim, fingerprint
from steadypay.identity.audit import AuditEntry
from steadypay.identity.domain import Principal
from steadypay.ledger.domain import (
    HoldAction,
    Risk,
    Transfer,
    TransferCommand,
    TransferStatus,
    TransferType,
)
from steadypay.ledger.service import (
    BatchResult,
    Executed,
    Ledger,
    Outcome,
    Renderer,
    WriteRequest,
)
from steadypay.ledger.wallets import Parties, Wallet, Wallets
from steadypay.payments.queries import Queries
from steadypay.payments.risk import RiskAssessor, RiskQuestion


@dataclass(frozen=True, slots=True)
class MoneyMovement:
    """A validated request: amounts already in minor units of a known currency."""

    type: TransferType
    from_wallet_id: UUID | None
    to_wallet_id: UUID | None
    amount: int
    currency: str
    description: str | None = None

    def parameters(self) -> dict[str, str | int | None]:
        return {
            "from": str(self.from_wallet_id) if self.from_wallet_id else None,
            "to": str(self.to_wallet_id) if self.to_wallet_id else None,
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
        }

    def command(
        self, transfer_id: UUID, principal: Principal, risk: Risk | None = None
    ) -> TransferCommand:
        return TransferCommand(
            id=transfer_id,
            type=self.type,
            from_wallet_id=self.from_wallet_id,
            to_wallet_id=self.to_wallet_id,
            amount=self.amount,
            currency=self.currency,
            initiated_by=principal.scope,
            description=self.description,
            risk=risk,
        )


def batch_item_key(batch_key: str, index: int) -> str:
    """The idempotency key item ``index`` of a batch is stored under."""
    digest = hashlib.sha256(batch_key.encode()).hexdigest()[:40]
    return f"batch:{digest}:{index}"


class Payments:
    def __init__(self, ledger: Ledger, wallets: Wallets, risk: RiskAssessor) -> None:
        self._ledger = ledger
        self._wallets = wallets
        self._risk = risk
        self.queries = Queries(ledger, wallets)
        """The read use cases, with their authorisation."""

    async def open_wallet(self, principal: Principal, user_id: UUID, currency: str) -> Wallet:
        """A new wallet in ``currency`` for ``user_id``: the admin's to open, or the user's own."""
        if not (principal.is_admin or principal.owns(user_id)):
            raise PermissionDenied("you can only open wallets for yourself", param="user_id")
        return await self._wallets.open(user_id, currency)

    async def submit(
        self, principal: Principal, idempotency_key: str, movement: MoneyMovement, render: Renderer
    ) -> Outcome:
        """Authorise, judge the risk of a transfer *before* money moves, then execute.

        A risky transfer (or, with the fraud service down, one the fallback rules flag) becomes
        a hold pending review instead of moving money."""
        await self._authorize(principal, movement)
        transfer_id = uuid.uuid4()
        claim = IdempotencyClaim(
            principal=principal.scope,
            key=idempotency_key,
            fingerprint=fingerprint(movement.type.value, movement.parameters()),
        )
        # A request answered before replays without moving money: don't ask the fraud
        # service again (that would count a retry toward the sender's velocity).
        parties = await self._parties(movement, claim)
        risk = await self._judge(transfer_id, movement, parties) if parties else None
        command = movement.command(transfer_id, principal, risk)
        [outcome] = await self._ledger.execute([WriteRequest(command, claim, render)])
        if (
            isinstance(outcome, Executed)
            and parties is not None
            and outcome.transfer.status in (TransferStatus.COMPLETED, TransferStatus.PENDING_REVIEW)
        ):
            await self._risk.record(parties.sender_user_id, outcome.transfer)
        return outcome

    async def transfer_batch(
        self,
        principal: Principal,
        idempotency_key: str,
        movements: Sequence[MoneyMovement],
        render: Renderer,
        *,
        atomic: bool,
    ) -> BatchResult:
        """Many transfers in one transaction of their own, outside group commit: the admin's
        bulk interface, not screened item by item (docs/decisions/0005-batch-api.md).

        Each item's outcome is what executing the transfers one by one, in order, would give.
        The key covers the batch whole: item ``i`` is claimed under :func:`batch_item_key` with
        a fingerprint of the *whole* batch, so a retry replays every item, and the same key with
        any other batch is refused (:class:`IdempotencyKeyReuse`) without anything happening --
        the check and the transfers share one transaction. With ``atomic``, nothing commits
        unless every transfer completes; the result is then not ``committed`` and its outcomes
        say what each item would have been."""
        if not principal.is_admin:
            raise PermissionDenied("this needs the admin key")
        whole = fingerprint(
            "transfer_batch",
            {"atomic": atomic, "transfers": [m.parameters() for m in movements]},
        ).hex()
        requests = []
        for index, movement in enumerate(movements):
            claim = IdempotencyClaim(
                principal=principal.scope,
                key=batch_item_key(idempotency_key, index),
                fingerprint=fingerprint("transfer_batch_item", {"batch": whole, "index": index}),
            )
            requests.append(WriteRequest(movement.command(uuid.uuid4(), principal), claim, render))
        result = await self._ledger.execute_together(requests, atomic=atomic)
        if result.refused == "key_reused":
            raise IdempotencyKeyReuse(param="Idempotency-Key")
        return result

    async def resolve_hold(
        self,
        principal: Principal,
        transfer_id: UUID,
        action: HoldAction,
        audit: AuditEntry | None = None,
    ) -> Transfer:
        """Approve (post) or reject (void) a held transfer: the admin's review decision.

        Asking again for the outcome the hold has returns it unchanged; any other resolved
        state is refused (:class:`HoldNotPending`), as is a hold whose time ran out before it
        was approved."""
        if not principal.is_admin:
            raise PermissionDenied("this needs the admin key")
        transfer = await self._ledger.resolve_hold(transfer_id, action, principal.actor, audit)
        if transfer.status is not action.outcome:
            raise HoldNotPending(
                f"the hold is {transfer.status.value}; it can no longer be {action.outcome.value}",
                details={"status": transfer.status.value},
            )
        return transfer

    async def _parties(self, movement: MoneyMovement, claim: IdempotencyClaim) -> Parties | None:
        """Who pays whom, for a transfer between two existing wallets not answered before (else
        None: deposits and withdrawals are not judged, the ledger records a missing wallet's
        failure, and a replay moves nothing)."""
        if movement.type is not TransferType.TRANSFER:
            return None
        assert movement.from_wallet_id is not None
        assert movement.to_wallet_id is not None
        return await self._wallets.parties(
            movement.from_wallet_id, movement.to_wallet_id, unless_answered=claim
        )

    async def _judge(
        self, transfer_id: uuid.UUID, movement: MoneyMovement, parties: Parties
    ) -> Risk:
        assert movement.from_wallet_id is not None
        assert movement.to_wallet_id is not None
        return await self._risk.assess(
            RiskQuestion(
                transfer_id=transfer_id,
                sender_user_id=parties.sender_user_id,
                receiver_user_id=parties.receiver_user_id,
                from_wallet_id=movement.from_wallet_id,
                to_wallet_id=movement.to_wallet_id,
                amount=movement.amount,
                currency=movement.currency,
                sender_created_at=parties.sender_created_at,
            )
        )

    async def _authorize(self, principal: Principal, movement: MoneyMovement) -> None:
        if principal.is_admin:
            return
        if movement.type is TransferType.DEPOSIT:
            raise PermissionDenied("only the admin can deposit")
        debited = movement.from_wallet_id
        assert debited is not None  # withdrawals and transfers always debit a named wallet
        wallet = await self._wallets.get(debited)
        # A missing wallet is the ledger's to judge (recorded as a failed transfer, 404).
        if wallet is not None and not principal.owns(wallet.user_id):
            param = "wallet_id" if movement.type is TransferType.WITHDRAWAL else "from_wallet_id"
            raise PermissionDenied("you can only debit your own wallets", param=param)

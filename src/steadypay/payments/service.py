"""Deposits, withdrawals and transfers: who may ask, and the one path into the ledger.

Every money-moving request carries an idempotency key; its fingerprint is the operation with
its normalised parameters, so a retried request replays and a different one reusing the key is
refused. Authorization reads the wallet outside the write transaction, which is sound because a
wallet's owner never changes and wallets are never deleted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

from steadypay.errors import PermissionDenied
from steadypay.idempotency.domain import IdempotencyClaim, fingerprint
from steadypay.identity.domain import Principal
from steadypay.ledger.domain import Risk, TransferCommand, TransferStatus, TransferType
from steadypay.ledger.service import Executed, Ledger, Outcome, Renderer, WriteRequest
from steadypay.ledger.wallets import Parties, Wallets
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


class Payments:
    def __init__(self, ledger: Ledger, wallets: Wallets, risk: RiskAssessor) -> None:
        self._ledger = ledger
        self._wallets = wallets
        self._risk = risk

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
        command = TransferCommand(
            id=transfer_id,
            type=movement.type,
            from_wallet_id=movement.from_wallet_id,
            to_wallet_id=movement.to_wallet_id,
            amount=movement.amount,
            currency=movement.currency,
            initiated_by=principal.scope,
            description=movement.description,
            risk=risk,
        )
        [outcome] = await self._ledger.execute([WriteRequest(command, claim, render)])
        if (
            isinstance(outcome, Executed)
            and parties is not None
            and outcome.transfer.status in (TransferStatus.COMPLETED, TransferStatus.PENDING_REVIEW)
        ):
            await self._risk.record(parties.sender_user_id, outcome.transfer)
        return outcome

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

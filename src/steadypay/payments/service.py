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
from steadypay.ledger.domain import TransferCommand, TransferType
from steadypay.ledger.service import Ledger, Outcome, Renderer, WriteRequest
from steadypay.ledger.wallets import Wallets


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
    def __init__(self, ledger: Ledger, wallets: Wallets) -> None:
        self._ledger = ledger
        self._wallets = wallets

    async def submit(
        self, principal: Principal, idempotency_key: str, movement: MoneyMovement, render: Renderer
    ) -> Outcome:
        await self._authorize(principal, movement)
        command = TransferCommand(
            id=uuid.uuid4(),
            type=movement.type,
            from_wallet_id=movement.from_wallet_id,
            to_wallet_id=movement.to_wallet_id,
            amount=movement.amount,
            currency=movement.currency,
            initiated_by=principal.scope,
            description=movement.description,
        )
        claim = IdempotencyClaim(
            principal=principal.scope,
            key=idempotency_key,
            fingerprint=fingerprint(movement.type.value, movement.parameters()),
        )
        [outcome] = await self._ledger.execute([WriteRequest(command, claim, render)])
        return outcome

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

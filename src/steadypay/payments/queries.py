"""Read use cases: wallets, their entries, transfers and the review queue, as a principal may see
them.

Read authorisation lives here, next to the write authorisation of
:class:`steadypay.payments.service.Payments`: a user sees its own wallets and the transfers it
initiated or that touch one of them; the admin sees everything. What a caller may not see is
reported as missing (404 ``not_found``), never as forbidden, so ids cannot be probed.
"""

from __future__ import annotations

from uuid import UUID

from steadypay.errors import NotFound, PermissionDenied, ValidationError
from steadypay.identity.domain import Principal
from steadypay.ledger.domain import Transfer
from steadypay.ledger.service import Ledger
from steadypay.ledger.wallets import Entry, Wallet, Wallets

MAX_ENTRY_ID = 2**63 - 1  # entries.id is a bigint

Page = tuple[list[Transfer], bool]
"""A page, newest first (oldest first for reviews), and whether more follow."""


class Queries:
    def __init__(self, ledger: Ledger, wallets: Wallets) -> None:
        self._ledger = ledger
        self._wallets = wallets

    async def wallet(self, principal: Principal, wallet_id: UUID) -> Wallet:
        """The wallet if the caller may see it; others' wallets are reported as missing."""
        wallet = await self._wallets.get(wallet_id)
        if wallet is None or not (principal.is_admin or principal.owns(wallet.user_id)):
            raise NotFound("no such wallet", param="wallet_id")
        return wallet

    async def entries(
        self, principal: Principal, wallet_id: UUID, *, limit: int, starting_after: str | None
    ) -> tuple[list[Entry], bool]:
        """The wallet's entries, newest first. ``starting_after`` is the cursor as given (an
        entry id); it is judged only once the wallet is known to be visible."""
        await self.wallet(principal, wallet_id)
        cursor = None
        if starting_after is not None:
            if not (starting_after.isascii() and starting_after.isdigit()) or (
                int(starting_after) > MAX_ENTRY_ID
            ):
                raise ValidationError("starting_after must be an entry id", param="starting_after")
            cursor = int(starting_after)
        return await self._wallets.entries(wallet_id, limit=limit, starting_after=cursor)

    async def transfer(self, principal: Principal, transfer_id: UUID) -> Transfer:
        """A transfer, to a party to it, whoever initiated it, or the admin."""
        transfer = await self._wallets.transfer(transfer_id)
        if transfer is None:
            raise NotFound("no such transfer", param="transfer_id")
        if not principal.is_admin and transfer.initiated_by != principal.scope:
            parties = [w for w in (transfer.from_wallet_id, transfer.to_wallet_id) if w]
            owners = {w.user_id for w in [await self._wallets.get(p) for p in parties] if w}
            if principal.user_id not in owners:
                raise NotFound("no such transfer", param="transfer_id")
        return transfer

    async def transfers(
        self,
        principal: Principal,
        *,
        wallet_id: UUID | None,
        limit: int,
        starting_after: UUID | None,
    ) -> Page:
        """Transfers, newest first: of one visible wallet, of all the caller's wallets, or (the
        admin, no wallet named) of all wallets."""
        if wallet_id is not None:
            await self.wallet(principal, wallet_id)
            wallet_ids: list[UUID] | None = [wallet_id]
        elif principal.is_admin:
            wallet_ids = None
        else:
            assert principal.user_id is not None
            wallet_ids = await self._wallets.user_wallet_ids(principal.user_id)
        return await self._wallets.transfers(
            wallet_ids=wallet_ids, limit=limit, starting_after=starting_after
        )

    async def pending_reviews(
        self, principal: Principal, *, limit: int, starting_after: UUID | None
    ) -> Page:
        """Transfers held for manual review, oldest first (the admin's queue)."""
        if not principal.is_admin:
            raise PermissionDenied("this needs the admin key")
        return await self._ledger.pending_reviews(limit, starting_after)

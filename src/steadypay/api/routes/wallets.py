"""/v1/wallets"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from steadypay.api.deps import ContainerDep, PrincipalDep
from steadypay.api.responses import json_response
from steadypay.api.schemas import (
    CreateWallet,
    EntryListOut,
    ErrorOut,
    WalletOut,
    entry_json,
    wallet_json,
)
from steadypay.bootstrap import Container
from steadypay.errors import NotFound, PermissionDenied, ValidationError
from steadypay.identity.domain import Principal
from steadypay.ledger.wallets import Wallet

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])
MAX_ENTRY_ID = 2**63 - 1  # entries.id is a bigint


async def visible_wallet(c: Container, who: Principal, wallet_id: UUID) -> Wallet:
    """The wallet if the caller may see it; others' wallets are reported as missing."""
    wallet = await c.wallets.get(wallet_id)
    if wallet is None or not (who.is_admin or who.owns(wallet.user_id)):
        raise NotFound("no such wallet", param="wallet_id")
    return wallet


@router.post(
    "",
    status_code=201,
    response_model=WalletOut,
    responses={409: {"model": ErrorOut, "description": "wallet_exists"}},
    summary="Open a wallet in a currency (admin, or the user for itself)",
)
async def create_wallet(body: CreateWallet, c: ContainerDep, who: PrincipalDep) -> Response:
    if not (who.is_admin or who.owns(body.user_id)):
        raise PermissionDenied("you can only open wallets for yourself", param="user_id")
    wallet = await c.wallets.open(body.user_id, body.currency)
    return json_response(wallet_json(wallet), 201)


@router.get("/{wallet_id}", response_model=WalletOut, summary="A wallet (owner or admin)")
async def get_wallet(wallet_id: UUID, c: ContainerDep, who: PrincipalDep) -> Response:
    return json_response(wallet_json(await visible_wallet(c, who, wallet_id)))


@router.get(
    "/{wallet_id}/entries",
    response_model=EntryListOut,
    summary="The wallet's ledger entries, newest first (owner or admin)",
)
async def list_entries(
    wallet_id: UUID,
    c: ContainerDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[str | None, Query(description="An entry id (cursor)")] = None,
) -> Response:
    await visible_wallet(c, who, wallet_id)
    cursor = None
    if starting_after is not None:
        if not (starting_after.isascii() and starting_after.isdigit()) or (
            int(starting_after) > MAX_ENTRY_ID
        ):
            raise ValidationError("starting_after must be an entry id", param="starting_after")
        cursor = int(starting_after)
    page, has_more = await c.wallets.entries(wallet_id, limit=limit, starting_after=cursor)
    return json_response({"data": [entry_json(x) for x in page], "has_more": has_more})

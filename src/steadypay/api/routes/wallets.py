"""/v1/wallets"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from steadypay.api.deps import ContainerDep, PrincipalDep
from steadypay.api.schemas import (
    CreateWallet,
    EntryListOut,
    ErrorOut,
    WalletOut,
    entry_json,
    wallet_json,
)
from steadypay.http.responses import json_response

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])


@router.post(
    "",
    status_code=201,
    response_model=WalletOut,
    responses={409: {"model": ErrorOut, "description": "wallet_exists"}},
    summary="Open a wallet in a currency (admin, or the user for itself)",
)
async def create_wallet(body: CreateWallet, c: ContainerDep, who: PrincipalDep) -> Response:
    wallet = await c.payments.open_wallet(who, body.user_id, body.currency)
    return json_response(wallet_json(wallet), 201)


@router.get("/{wallet_id}", response_model=WalletOut, summary="A wallet (owner or admin)")
async def get_wallet(wallet_id: UUID, c: ContainerDep, who: PrincipalDep) -> Response:
    return json_response(wallet_json(await c.payments.queries.wallet(who, wallet_id)))


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
    page, has_more = await c.payments.queries.entries(
        who, wallet_id, limit=limit, starting_after=starting_after
    )
    return json_response({"data": [entry_json(x) for x in page], "has_more": has_more})

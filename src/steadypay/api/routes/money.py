"""/v1/deposits, /v1/withdrawals, /v1/transfers"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from steadypay.api.deps import (
    AdminDep,
    ContainerDep,
    IdempotencyKeyDep,
    PrincipalDep,
    audit_entry,
)
from steadypay.api.responses import outcome_response, transfer_renderer
from steadypay.api.schemas import (
    CreateDeposit,
    CreateTransfer,
    CreateWithdrawal,
    ErrorOut,
    TransferListOut,
    TransferOut,
)
from steadypay.http.context import request_id
from steadypay.http.responses import json_response
from steadypay.identity.audit import HOLD_APPROVE, HOLD_REJECT
from steadypay.identity.domain import Principal
from steadypay.ledger.domain import HoldAction
from steadypay.ledger.views import transfer_json
from steadypay.payments.service import Payments

router = APIRouter(tags=["money"])

MONEY_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "validation_error, idempotency_key_required"},
    403: {"model": ErrorOut, "description": "forbidden: debiting someone else's wallet"},
    404: {"model": ErrorOut, "description": "not_found: a wallet is missing (recorded failed)"},
    409: {"model": ErrorOut, "description": "idempotency_key_in_use"},
    422: {
        "model": ErrorOut,
        "description": "insufficient_funds, currency_mismatch, balance_limit_exceeded, "
        "idempotency_key_reuse; "
        "business failures carry the failed transfer's id",
    },
    503: {"model": ErrorOut, "description": "database_unavailable, ledger_busy: retry, same key"},
}


@router.post(
    "/v1/deposits",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
    summary="Deposit into a wallet (admin)",
)
async def create_deposit(
    body: CreateDeposit, key: IdempotencyKeyDep, c: ContainerDep, who: AdminDep
) -> Response:
    outcome = await c.payments.submit(who, key, body.movement(), transfer_renderer(request_id()))
    return outcome_response(outcome)


@router.post(
    "/v1/withdrawals",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
    summary="Withdraw from a wallet (owner or admin)",
)
async def create_withdrawal(
    body: CreateWithdrawal, key: IdempotencyKeyDep, c: ContainerDep, who: PrincipalDep
) -> Response:
    outcome = await c.payments.submit(who, key, body.movement(), transfer_renderer(request_id()))
    return outcome_response(outcome)


@router.post(
    "/v1/transfers",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
    summary="Move money between two wallets (owner of the source wallet, or admin)",
)
async def create_transfer(
    body: CreateTransfer, key: IdempotencyKeyDep, c: ContainerDep, who: PrincipalDep
) -> Response:
    outcome = await c.payments.submit(who, key, body.movement(), transfer_renderer(request_id()))
    return outcome_response(outcome)


@router.get(
    "/v1/transfers/{transfer_id}",
    response_model=TransferOut,
    summary="A transfer (a party to it, whoever initiated it, or admin)",
)
async def get_transfer(transfer_id: UUID, c: ContainerDep, who: PrincipalDep) -> Response:
    return json_response(transfer_json(await c.payments.queries.transfer(who, transfer_id)))


@router.get(
    "/v1/transfers",
    response_model=TransferListOut,
    summary="Transfers, newest first: of one wallet, of all your wallets, or all (admin)",
)
async def list_transfers(
    c: ContainerDep,
    who: PrincipalDep,
    wallet_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[UUID | None, Query(description="A transfer id (cursor)")] = None,
) -> Response:
    page, has_more = await c.payments.queries.transfers(
        who, wallet_id=wallet_id, limit=limit, starting_after=starting_after
    )
    return json_response({"data": [transfer_json(t) for t in page], "has_more": has_more})


HOLD_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "not_found"},
    409: {"model": ErrorOut, "description": "hold_not_pending: already resolved otherwise"},
}


async def _resolve(
    request: Request, payments: Payments, who: Principal, transfer_id: UUID, action: HoldAction
) -> Response:
    name = HOLD_APPROVE if action is HoldAction.APPROVE else HOLD_REJECT
    audit = audit_entry(request, who, name, f"transfer:{transfer_id}")
    transfer = await payments.resolve_hold(who, transfer_id, action, audit)
    return json_response(transfer_json(transfer))


@router.post(
    "/v1/transfers/{transfer_id}/approve",
    response_model=TransferOut,
    responses=HOLD_RESPONSES,
    summary="Post a held transfer: the money reaches the receiver (admin; idempotent)",
)
async def approve(request: Request, transfer_id: UUID, c: ContainerDep, who: AdminDep) -> Response:
    return await _resolve(request, c.payments, who, transfer_id, HoldAction.APPROVE)


@router.post(
    "/v1/transfers/{transfer_id}/reject",
    response_model=TransferOut,
    responses=HOLD_RESPONSES,
    summary="Void a held transfer: the sender's funds are released (admin; idempotent)",
)
async def reject(request: Request, transfer_id: UUID, c: ContainerDep, who: AdminDep) -> Response:
    return await _resolve(request, c.payments, who, transfer_id, HoldAction.REJECT)


@router.get(
    "/v1/reviews",
    response_model=TransferListOut,
    summary="Transfers held for manual review, oldest first (admin)",
)
async def list_reviews(
    c: ContainerDep,
    who: AdminDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[UUID | None, Query(description="A transfer id (cursor)")] = None,
) -> Response:
    page, has_more = await c.payments.queries.pending_reviews(
        who, limit=limit, starting_after=starting_after
    )
    return json_response({"data": [transfer_json(t) for t in page], "has_more": has_more})

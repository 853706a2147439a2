"""POST /v1/transfers/batch: up to 8,189 transfers in one request and one transaction.

A privileged ledger API for internal flows (payouts, settlements, sweeps), in the manner of
TigerBeetle's batched requests: admin only, and its transfers are not screened by the fraud
service one by one (docs/decisions/0005-batch-api.md says why). Per-item results come back in
order; each item's outcome is what executing the transfers one by one, in order, would give.

The use case, with its idempotency (the batch's ``Idempotency-Key`` covers it whole), is
:meth:`steadypay.payments.service.Payments.transfer_batch`; this route parses the body and
renders the result (:func:`steadypay.api.responses.batch_response`).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep, IdempotencyKeyDep
from steadypay.api.responses import batch_response, transfer_renderer
from steadypay.api.schemas import CreateTransferBatch, ErrorOut, TransferBatchOut
from steadypay.http.context import request_id

router = APIRouter(tags=["money"])


@router.post(
    "/v1/transfers/batch",
    response_model=TransferBatchOut,
    responses={
        400: {"model": ErrorOut, "description": "validation_error (e.g. more than 8,189)"},
        403: {"model": ErrorOut, "description": "forbidden: admin only"},
        409: {"model": ErrorOut, "description": "idempotency_key_in_use"},
        422: {"model": ErrorOut, "description": "idempotency_key_reuse, atomic_batch_failed"},
        503: {"model": ErrorOut, "description": "database_unavailable, ledger_busy: retry"},
    },
    summary="Up to 8,189 transfers in one transaction (admin): per-item results in order; "
    '`"atomic": true` for all or none',
)
async def create_transfer_batch(
    body: CreateTransferBatch, key: IdempotencyKeyDep, c: ContainerDep, who: AdminDep
) -> Response:
    movements = [item.movement() for item in body.transfers]
    result = await c.payments.transfer_batch(
        who, key, movements, transfer_renderer(request_id()), atomic=body.atomic
    )
    return batch_response(result, atomic=body.atomic)

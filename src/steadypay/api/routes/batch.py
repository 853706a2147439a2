"""POST /v1/transfers/batch: up to 8,189 transfers in one request and one transaction.

A privileged ledger API for internal flows (payouts, settlements, sweeps), in the manner of
TigerBeetle's batched requests: admin only, and its transfers are not screened by the fraud
service one by one (docs/decisions/0005-batch-api.md says why). Per-item results come back in
order; each item's outcome is what executing the transfers one by one, in order, would give.

Idempotency: the batch's ``Idempotency-Key`` covers it whole. Item ``i`` is stored under a key
derived from it (``batch:<digest of the key>:<i>``) with a fingerprint of the *whole* batch, so
a retry replays every item, and the same key with any other batch is refused (422
``idempotency_key_reuse``) without anything happening — the check and the transfers share one
transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep, IdempotencyKeyDep
from steadypay.api.responses import json_response, render_transfer_outcome
from steadypay.api.schemas import CreateTransferBatch, ErrorOut, TransferBatchOut
from steadypay.errors import AtomicBatchFailed, IdempotencyKeyReuse
from steadypay.idempotency.domain import IdempotencyClaim, StoredResponse, fingerprint
from steadypay.identity.domain import Principal
from steadypay.ledger.domain import TransferCommand
from steadypay.ledger.service import Executed, Outcome, Replayed, WriteRequest

router = APIRouter(tags=["money"])


def item_key(batch_key: str, index: int) -> str:
    digest = hashlib.sha256(batch_key.encode()).hexdigest()[:40]
    return f"batch:{digest}:{index}"


def requests_for(body: CreateTransferBatch, batch_key: str, who: Principal) -> list[WriteRequest]:
    movements = [item.movement() for item in body.transfers]
    whole = fingerprint(
        "transfer_batch",
        {"atomic": body.atomic, "transfers": [m.parameters() for m in movements]},
    ).hex()
    requests = []
    for index, movement in enumerate(movements):
        claim = IdempotencyClaim(
            principal=who.scope,
            key=item_key(batch_key, index),
            fingerprint=fingerprint("transfer_batch_item", {"batch": whole, "index": index}),
        )
        command = TransferCommand(
            id=uuid.uuid4(),
            type=movement.type,
            from_wallet_id=movement.from_wallet_id,
            to_wallet_id=movement.to_wallet_id,
            amount=movement.amount,
            currency=movement.currency,
            initiated_by=who.scope,
            description=movement.description,
        )
        requests.append(WriteRequest(command, claim, render_transfer_outcome))
    return requests


def item_json(index: int, stored: StoredResponse) -> dict[str, Any]:
    body = json.loads(stored.body or "{}")
    if stored.status < 300:
        return {"index": index, "status": body["status"], "transfer": body, "error": None}
    return {"index": index, "status": "failed", "transfer": None, "error": body["error"]}


def stored_of(outcome: Outcome) -> StoredResponse:
    if isinstance(outcome, Executed):
        assert outcome.response is not None
        return outcome.response
    assert isinstance(outcome, Replayed)
    return outcome.response


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
    result = await c.ledger.execute_together(requests_for(body, key, who), atomic=body.atomic)
    if result.refused == "key_reused":
        raise IdempotencyKeyReuse(param="Idempotency-Key")
    if not result.committed:
        items = []
        for index, outcome in enumerate(result.outcomes):
            item = item_json(index, stored_of(outcome))
            if item["error"] is None:
                item = {"index": index, "status": "rolled_back", "transfer": None, "error": None}
            else:  # the failed transfer was rolled back too: its id names nothing
                item["error"] = {
                    k: v for k, v in item["error"].items() if k not in ("transfer_id", "request_id")
                }
            items.append(item)
        raise AtomicBatchFailed(details={"items": [i for i in items if i["error"]]})
    items = [item_json(i, stored_of(o)) for i, o in enumerate(result.outcomes)]
    replayed = all(isinstance(o, Replayed) for o in result.outcomes)
    return json_response(
        {"atomic": body.atomic, "data": items},
        200,
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )

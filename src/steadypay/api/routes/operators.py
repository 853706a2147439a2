"""/v1/admin/keys (named operator keys) and /v1/admin/audit (the audit trail)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from steadypay.api.deps import AdminDep, ContainerDep, audit_entry
from steadypay.api.schemas import ErrorOut
from steadypay.http.responses import json_response
from steadypay.identity import audit as actions

router = APIRouter(prefix="/v1/admin", tags=["admin"])

NO_STORE = {"Cache-Control": "no-store"}
KEY_ID = Annotated[str, Path(pattern=r"^ak_[0-9a-f]{12}$", description="An admin key's id")]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"


class CreateAdminKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str,
        Field(
            pattern=NAME_PATTERN,
            description="Who holds the key, e.g. alice@ops: 1-64 of a-z 0-9 . _ @ -",
        ),
    ]


class AdminKeyOut(BaseModel):
    id: str
    name: str
    actor: str
    created_at: str
    created_by: str
    rotated_at: str | None
    revoked_at: str | None
    revoked_by: str | None


class AdminKeyCreatedOut(AdminKeyOut):
    key: str = Field(description="The secret, shown once (sp_op_…)")


class AdminKeyListOut(BaseModel):
    data: list[AdminKeyOut]


class AuditEntryOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    source: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditListOut(BaseModel):
    data: list[AuditEntryOut]
    has_more: bool


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "not_found"}}


@router.post(
    "/keys",
    status_code=201,
    response_model=AdminKeyCreatedOut,
    responses={409: {"model": ErrorOut, "description": "conflict (a live key has this name)"}},
    summary="Create a named operator key (admin). The response carries its secret, shown once.",
)
async def create_key(
    request: Request, body: CreateAdminKey, c: ContainerDep, who: AdminDep
) -> Response:
    entry = audit_entry(request, who, actions.ADMIN_KEY_CREATE)
    key, secret = await c.identity.operators.create(body.name, entry)
    return json_response(key.to_json() | {"key": secret}, 201, headers=NO_STORE)


@router.get("/keys", response_model=AdminKeyListOut, summary="Operator keys (admin)")
async def list_keys(
    c: ContainerDep,
    _: AdminDep,
    include_revoked: Annotated[bool, Query()] = False,
) -> Response:
    keys = await c.identity.operators.list(include_revoked=include_revoked)
    return json_response({"data": [k.to_json() for k in keys]})


@router.post(
    "/keys/{key_id}/rotate",
    response_model=AdminKeyCreatedOut,
    responses=NOT_FOUND,
    summary="A new secret for an operator key (admin); the old secret is refused at once.",
)
async def rotate_key(request: Request, key_id: KEY_ID, c: ContainerDep, who: AdminDep) -> Response:
    entry = audit_entry(request, who, actions.ADMIN_KEY_ROTATE, key_id)
    key, secret = await c.identity.operators.rotate(key_id, entry)
    return json_response(key.to_json() | {"key": secret}, headers=NO_STORE)


@router.delete(
    "/keys/{key_id}",
    response_model=AdminKeyOut,
    responses=NOT_FOUND,
    summary="Revoke an operator key (admin; idempotent).",
)
async def revoke_key(request: Request, key_id: KEY_ID, c: ContainerDep, who: AdminDep) -> Response:
    entry = audit_entry(request, who, actions.ADMIN_KEY_REVOKE, key_id)
    return json_response((await c.identity.operators.revoke(key_id, entry)).to_json())


@router.get(
    "/audit",
    response_model=AuditListOut,
    summary="The audit trail, newest first (admin): who did what, when, from where.",
)
async def audit_log(
    c: ContainerDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    starting_after: Annotated[
        int | None, Query(ge=1, le=2**62, description="An entry id (cursor)")
    ] = None,
    actor: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z]+:[A-Za-z0-9_.@:-]{1,100}$",
            description="Only this actor's entries (admin:ak_…, admin:env, user:<id>)",
        ),
    ] = None,
) -> Response:
    page, has_more = await c.identity.audit.page(
        limit=limit, starting_after=starting_after, actor=actor
    )
    return json_response({"data": page, "has_more": has_more})

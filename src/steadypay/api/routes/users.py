"""/v1/users"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from steadypay.api.deps import AdminDep, ContainerDep, PrincipalDep, audit_entry
from steadypay.api.schemas import CreateUser, ErrorOut, UserCreatedOut, user_json
from steadypay.errors import NotFound
from steadypay.http.responses import json_response
from steadypay.identity import audit as actions

NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.post(
    "",
    status_code=201,
    response_model=UserCreatedOut,
    responses={409: {"model": ErrorOut, "description": "email_taken"}},
    summary="Create a user (admin). The response carries its API key, shown once.",
)
async def create_user(body: CreateUser, c: ContainerDep, _: AdminDep) -> Response:
    user, api_key = await c.identity.create_user(body.name, str(body.email))
    return json_response(user_json(user, api_key), 201, headers=NO_STORE)


class ApiKeyOut(BaseModel):
    user_id: UUID
    api_key: str = Field(description="The new key, shown once; the old one is refused from now")


@router.post(
    "/{user_id}/api_key",
    response_model=ApiKeyOut,
    responses={404: {"model": ErrorOut, "description": "not_found"}},
    summary="Replace a user's API key (the user itself, or an admin issuing a new one). The old "
    "key is refused at once.",
)
async def rotate_api_key(
    request: Request, user_id: UUID, c: ContainerDep, who: PrincipalDep
) -> Response:
    if not (who.is_admin or who.owns(user_id)):
        raise NotFound("no such user", param="user_id")  # never confirm another user exists
    entry = audit_entry(request, who, actions.USER_KEY_ROTATE)
    api_key = await c.identity.replace_user_key(user_id, entry)
    return json_response({"user_id": str(user_id), "api_key": api_key}, headers=NO_STORE)


@router.delete(
    "/{user_id}/api_key",
    status_code=204,
    responses={404: {"model": ErrorOut, "description": "not_found"}},
    summary="Revoke a user's API key (admin): refused from now on, until a new one is issued.",
)
async def revoke_api_key(
    request: Request, user_id: UUID, c: ContainerDep, who: AdminDep
) -> Response:
    await c.identity.revoke_user_key(user_id, audit_entry(request, who, actions.USER_KEY_REVOKE))
    return Response(status_code=204)

"""/v1/users"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep
from steadypay.api.schemas import CreateUser, ErrorOut, UserCreatedOut, user_json
from steadypay.http.responses import json_response

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
    return json_response(user_json(user, api_key), 201)

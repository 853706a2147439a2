"""Request bodies of the notification service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from steadypay.http.fields import Text


class EventIn(BaseModel):
    """An outbox event as the relay posts it. Unknown top-level fields are kept (and delivered
    to webhooks), so the ledger may add some without a release of this service."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: UUID
    type: Annotated[str, Text(min_length=1, max_length=100)]
    created_at: AwareDatetime
    user_ids: list[UUID] = Field(max_length=1000)
    data: dict[str, Any]


class CreateEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: UUID
    url: Annotated[str, Text(min_length=1, max_length=2048)]

"""Request and response shapes of ``POST /check-fraud``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

from steadypay.fraud.domain import Check
from steadypay.http.fields import CurrencyCode
from steadypay.money import MAX_AMOUNT_MINOR, get_currency, parse_amount


class CheckFraudIn(BaseModel):
    """A transfer about to be made. ``amount`` and ``amount_minor`` must agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transfer_id: UUID = Field(description="Also the idempotency key of the check.")
    sender_user_id: UUID
    receiver_user_id: UUID | None = Field(
        default=None, description="The receiving user, when the receiver is a user's wallet."
    )
    from_wallet_id: UUID
    to_wallet_id: UUID
    # declared before the amounts so that their validators can use it
    currency: CurrencyCode
    amount: StrictStr = Field(
        description='Decimal string in major units, e.g. "12.34".', examples=["12.34"]
    )
    amount_minor: StrictInt = Field(gt=0, le=MAX_AMOUNT_MINOR, examples=[1234])
    sender_created_at: AwareDatetime = Field(
        description="When the sender's account was created (ISO 8601 with a UTC offset)."
    )

    @field_validator("amount")
    @classmethod
    def _valid_amount(cls, value: str, info: Any) -> str:
        currency = info.data.get("currency")
        if currency is not None:
            parse_amount(value, get_currency(currency))
        return value

    @field_validator("amount_minor")
    @classmethod
    def _agrees_with_amount(cls, value: int, info: Any) -> int:
        currency, amount = info.data.get("currency"), info.data.get("amount")
        if currency is not None and amount is not None:
            expected = parse_amount(amount, get_currency(currency))
            if value != expected:
                raise ValueError(
                    f"amount_minor must equal amount in minor units: {amount} {currency} "
                    f"is {expected}"
                )
        return value

    def to_check(self) -> Check:
        return Check(
            transfer_id=self.transfer_id,
            sender_user_id=self.sender_user_id,
            receiver_user_id=self.receiver_user_id,
            from_wallet_id=self.from_wallet_id,
            to_wallet_id=self.to_wallet_id,
            amount_minor=self.amount_minor,
            currency=get_currency(self.currency),
            sender_created_at=self.sender_created_at,
        )


class VerdictOut(BaseModel):
    risk_score: int = Field(ge=0, le=100)
    reasons: list[str] = Field(examples=[["amount_band:high", "new_account"]])
    model_version: str = Field(examples=["rules-2026.11"])

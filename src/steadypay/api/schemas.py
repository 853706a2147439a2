"""Request and response shapes of the HTTP API, and the serialisers of domain objects.

Amounts cross the edge as decimal strings in major units ("12.34"); a JSON number is refused
(a float cannot hold every amount exactly). Inside, everything is integer minor units.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
)

from steadypay.http.fields import CurrencyCode, Email, Name, Text
from steadypay.identity.domain import User
from steadypay.ledger.domain import TransferType
from steadypay.ledger.wallets import Entry, Wallet
from steadypay.money import format_amount, get_currency, parse_amount
from steadypay.payments.service import MoneyMovement

AMOUNT_DOC = (
    'Decimal string in major units, e.g. "12.34"; at most as many decimals as the currency '
    "allows (USD 2, JPY 0, KWD 3); positive; at most 10^15 minor units."
)
Amount = Annotated[StrictStr, Field(description=AMOUNT_DOC, examples=["12.34"])]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MoneyFields(_Strict):
    # currency is declared first so that amount's validator can use it
    currency: CurrencyCode
    amount: Amount

    @field_validator("amount")
    @classmethod
    def _valid_amount(cls, value: str, info: Any) -> str:
        currency = info.data.get("currency")
        if currency is not None:
            parse_amount(value, get_currency(currency))
        return value

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, get_currency(self.currency))


class CreateUser(_Strict):
    name: Annotated[
        str,
        Name(max_length=200),
        Field(description="Trimmed of invisible characters at its ends; no control characters."),
    ]
    email: Email


class CreateWallet(_Strict):
    user_id: UUID
    currency: CurrencyCode


class CreateDeposit(_MoneyFields):
    wallet_id: UUID

    def movement(self) -> MoneyMovement:
        return MoneyMovement(TransferType.DEPOSIT, None, self.wallet_id, self.minor, self.currency)


class CreateWithdrawal(_MoneyFields):
    wallet_id: UUID

    def movement(self) -> MoneyMovement:
        return MoneyMovement(
            TransferType.WITHDRAWAL, self.wallet_id, None, self.minor, self.currency
        )


class CreateTransfer(_MoneyFields):
    from_wallet_id: UUID
    to_wallet_id: UUID
    description: Annotated[str, Text(max_length=500)] | None = Field(
        default=None, description="One line: no control characters."
    )

    @field_validator("to_wallet_id")
    @classmethod
    def _two_wallets(cls, value: UUID, info: Any) -> UUID:
        if info.data.get("from_wallet_id") == value:
            raise ValueError("from_wallet_id and to_wallet_id must be different wallets")
        return value

    def movement(self) -> MoneyMovement:
        return MoneyMovement(
            TransferType.TRANSFER,
            self.from_wallet_id,
            self.to_wallet_id,
            self.minor,
            self.currency,
            self.description,
        )


# --- responses (documented in OpenAPI; the handlers serialise with the functions below) ----


class UserOut(BaseModel):
    id: UUID
    name: str
    email: str
    created_at: datetime


class UserCreatedOut(UserOut):
    api_key: str = Field(description="Shown once; store it now. steadypay keeps only a hash.")


class WalletOut(BaseModel):
    id: UUID
    user_id: UUID | None
    currency: str
    balance: str
    available_balance: str
    created_at: datetime


class RiskOut(BaseModel):
    score: int | None = Field(description="0-100 from the fraud service; null from fallback rules")
    source: str = Field(description='"service" or "fallback" (fraud service unavailable)')
    reasons: list[str]


class TransferOut(BaseModel):
    id: UUID
    type: TransferType
    status: str = Field(description="completed, failed, pending_review (a hold), rejected, expired")
    from_wallet_id: UUID | None = Field(description="null for deposits")
    to_wallet_id: UUID | None = Field(description="null for withdrawals")
    amount: str
    currency: str
    description: str | None
    failure_code: str | None
    risk: RiskOut | None = Field(description="How a transfer was judged; null otherwise")
    hold_expires_at: datetime | None
    created_at: datetime
    completed_at: datetime | None


class TransferListOut(BaseModel):
    data: list[TransferOut]
    has_more: bool


class EntryOut(BaseModel):
    id: str
    transfer_id: UUID
    amount: str = Field(description='Signed: "-5.00" for a debit')
    balance_before: str
    balance_after: str
    created_at: datetime


class EntryListOut(BaseModel):
    data: list[EntryOut]
    has_more: bool


class ErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None
    request_id: str
    transfer_id: UUID | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def user_json(user: User, api_key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(user.id),
        "name": user.name,
        "email": user.email,
        "created_at": user.created_at.isoformat(),
    }
    if api_key is not None:
        body["api_key"] = api_key
    return body


def wallet_json(wallet: Wallet) -> dict[str, Any]:
    currency = get_currency(wallet.currency)
    return {
        "id": str(wallet.id),
        "user_id": str(wallet.user_id) if wallet.user_id else None,
        "currency": wallet.currency,
        "balance": format_amount(wallet.balance, currency),
        "available_balance": format_amount(wallet.available_balance, currency),
        "created_at": wallet.created_at.isoformat(),
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    currency = get_currency(entry.currency)
    return {
        "id": str(entry.id),
        "transfer_id": str(entry.transfer_id),
        "amount": format_amount(entry.amount, currency),
        "balance_before": format_amount(entry.balance_before, currency),
        "balance_after": format_amount(entry.balance_after, currency),
        "created_at": entry.created_at.isoformat(),
    }


MAX_BATCH_TRANSFERS = 8189
"""TigerBeetle's limit of transfers per request."""


class CreateTransferBatch(_Strict):
    transfers: Annotated[list[CreateTransfer], Field(min_length=1, max_length=MAX_BATCH_TRANSFERS)]
    atomic: bool = Field(
        default=False,
        description="All transfers complete, or none happens (like TigerBeetle's linked chains).",
    )


class BatchItemOut(BaseModel):
    index: int
    status: str = Field(description="completed, failed, or rolled_back (an atomic batch failed)")
    transfer: TransferOut | None
    error: dict[str, Any] | None


class TransferBatchOut(BaseModel):
    atomic: bool
    data: list[BatchItemOut]

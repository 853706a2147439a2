"""Ledger domain: transfer commands, accounts and the posting rules. Plain Python, no I/O.

:func:`apply_batch` is the heart of the write path. It takes the commands of one batch and the
locked accounts, applies the commands one after another exactly as sequential execution would,
and returns one outcome per command plus the postings to write. A failed command (insufficient
funds, currency mismatch, missing wallet) changes no balance and never affects its neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from steadypay.money import MAX_BALANCE_MINOR


class TransferType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


class TransferStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    PENDING_REVIEW = "pending_review"
    """A hold: reserved on the sender (available drops), nothing at the receiver yet."""
    REJECTED = "rejected"
    EXPIRED = "expired"


class HoldAction(StrEnum):
    APPROVE = "approve"  # post the pending transfer
    REJECT = "reject"  # void it
    EXPIRE = "expire"  # void it because its time ran out

    @property
    def outcome(self) -> TransferStatus:
        return {
            HoldAction.APPROVE: TransferStatus.COMPLETED,
            HoldAction.REJECT: TransferStatus.REJECTED,
            HoldAction.EXPIRE: TransferStatus.EXPIRED,
        }[self]


@dataclass(frozen=True, slots=True)
class Risk:
    """How a transfer was judged before money moved."""

    score: int | None
    """0-100 from the fraud service; None when the in-process fallback rules decided."""
    source: str  # "service" | "fallback"
    reasons: tuple[str, ...]
    review: bool


class FailureCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CURRENCY_MISMATCH = "currency_mismatch"
    WALLET_NOT_FOUND = "wallet_not_found"
    BALANCE_LIMIT_EXCEEDED = "balance_limit_exceeded"


FAILURE_MESSAGES: dict[FailureCode, str] = {
    FailureCode.INSUFFICIENT_FUNDS: "the source wallet's available balance is too low",
    FailureCode.CURRENCY_MISMATCH: "the wallets' currencies do not match the requested currency",
    FailureCode.WALLET_NOT_FOUND: "a wallet named by the request does not exist",
    FailureCode.BALANCE_LIMIT_EXCEEDED: "a balance would exceed the supported maximum",
}


class AccountKind(StrEnum):
    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Account:
    """A wallet as the ledger sees it: balances in minor units."""

    id: UUID
    kind: AccountKind
    currency: str
    balance: int
    available_balance: int
    user_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class TransferCommand:
    """One money movement as requested. For deposits ``from_wallet_id`` is None (the currency's
    system account pays); for withdrawals ``to_wallet_id`` is None (the system account receives).
    """

    id: UUID
    type: TransferType
    from_wallet_id: UUID | None
    to_wallet_id: UUID | None
    amount: int
    currency: str
    initiated_by: str
    description: str | None = None
    risk: Risk | None = None
    """Set for transfers: the verdict; ``risk.review`` makes it a hold pending review."""

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("amount must be positive")
        expected = {
            TransferType.DEPOSIT: (False, True),
            TransferType.WITHDRAWAL: (True, False),
            TransferType.TRANSFER: (True, True),
        }[self.type]
        if (self.from_wallet_id is not None, self.to_wallet_id is not None) != expected:
            raise ValueError(f"a {self.type} names the wallets {expected} (from, to)")
        if self.from_wallet_id is not None and self.from_wallet_id == self.to_wallet_id:
            raise ValueError("a transfer needs two different wallets")


@dataclass(frozen=True, slots=True)
class Posting:
    """One entry of the double-entry ledger (the seed's balance_history row)."""

    transfer_id: UUID
    wallet_id: UUID
    currency: str
    amount: int
    balance_before: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as recorded: the command, the accounts that actually moved, and its fate."""

    id: UUID
    type: TransferType
    status: TransferStatus
    from_wallet_id: UUID | None
    to_wallet_id: UUID | None
    amount: int
    currency: str
    description: str | None
    initiated_by: str
    created_at: datetime
    completed_at: datetime | None
    failure_code: FailureCode | None = None
    failure_param: str | None = None
    postings: tuple[Posting, ...] = field(default=())
    risk: Risk | None = None
    hold_expires_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None


@dataclass(slots=True)
class BatchResult:
    transfers: list[Transfer]
    postings: list[Posting]
    accounts: dict[UUID, Account]
    """The accounts whose balances changed, with their final balances."""


def apply_batch(
    commands: Sequence[TransferCommand],
    accounts: Mapping[UUID, Account],
    system_accounts: Mapping[str, Account],
    now: datetime,
    hold_ttl: timedelta = timedelta(hours=72),
) -> BatchResult:
    """Apply ``commands`` in order to ``accounts`` (locked by the caller) and return outcomes."""
    state: dict[UUID, Account] = dict(accounts)
    for system in system_accounts.values():
        state[system.id] = system
    system_ids = {currency: account.id for currency, account in system_accounts.items()}
    changed: set[UUID] = set()
    transfers: list[Transfer] = []
    postings: list[Posting] = []
    for command in commands:
        debit_id = command.from_wallet_id or system_ids.get(command.currency)
        credit_id = command.to_wallet_id or system_ids.get(command.currency)
        debit = state.get(debit_id) if debit_id else None
        credit = state.get(credit_id) if credit_id else None
        failure = _check(command, debit, credit)
        if failure is not None:
            code, param = failure
            transfers.append(_record(command, now, failure_code=code, failure_param=param))
            continue
        assert debit is not None  # _check guarantees both
        assert credit is not None
        if command.risk is not None and command.risk.review:
            # A hold: reserve the amount on the sender; the receiver sees nothing yet.
            state[debit.id] = replace(
                debit, available_balance=debit.available_balance - command.amount
            )
            changed.add(debit.id)
            transfers.append(_record(command, now, hold_expires_at=now + hold_ttl))
            continue
        debit_after = replace(
            debit,
            balance=debit.balance - command.amount,
            available_balance=debit.available_balance - command.amount,
        )
        credit_after = replace(
            credit,
            balance=credit.balance + command.amount,
            available_balance=credit.available_balance + command.amount,
        )
        pair = (
            Posting(command.id, debit.id, command.currency, -command.amount,
                    debit.balance, debit_after.balance),
            Posting(command.id, credit.id, command.currency, command.amount,
                    credit.balance, credit_after.balance),
        )  # fmt: skip
        state[debit.id], state[credit.id] = debit_after, credit_after
        changed.update((debit.id, credit.id))
        postings.extend(pair)
        transfers.append(_record(command, now, postings=pair))
    return BatchResult(
        transfers, postings, {account_id: state[account_id] for account_id in changed}
    )


def _check(
    command: TransferCommand, debit: Account | None, credit: Account | None
) -> tuple[FailureCode, str | None] | None:
    """The reason ``command`` cannot be applied to these accounts, or None if it can."""
    single = command.type is not TransferType.TRANSFER  # deposits/withdrawals name one wallet
    named = (
        (debit, command.from_wallet_id, "wallet_id" if single else "from_wallet_id"),
        (credit, command.to_wallet_id, "wallet_id" if single else "to_wallet_id"),
    )
    for account, named_id, param in named:
        # A caller can only name user wallets; system accounts are the ledger's own.
        if named_id is not None and (account is None or account.kind is not AccountKind.USER):
            return FailureCode.WALLET_NOT_FOUND, param
    for account, _, _ in named:
        # A missing system account means no wallet was ever opened in this currency, so the
        # named wallet cannot be in it either: that is a currency mismatch.
        if account is None or account.currency != command.currency:
            return FailureCode.CURRENCY_MISMATCH, "currency"
    assert debit is not None  # the loop above returned otherwise
    assert credit is not None
    if debit.kind is AccountKind.USER and debit.available_balance < command.amount:
        return FailureCode.INSUFFICIENT_FUNDS, "amount"
    if credit.balance + command.amount > MAX_BALANCE_MINOR or (
        debit.balance - command.amount < -MAX_BALANCE_MINOR
    ):
        return FailureCode.BALANCE_LIMIT_EXCEEDED, "amount"
    return None


def _record(
    command: TransferCommand,
    now: datetime,
    *,
    postings: tuple[Posting, ...] = (),
    failure_code: FailureCode | None = None,
    failure_param: str | None = None,
    hold_expires_at: datetime | None = None,
) -> Transfer:
    if failure_code:
        status = TransferStatus.FAILED
    elif hold_expires_at:
        status = TransferStatus.PENDING_REVIEW
    else:
        status = TransferStatus.COMPLETED
    return Transfer(
        id=command.id,
        type=command.type,
        status=status,
        from_wallet_id=command.from_wallet_id,
        to_wallet_id=command.to_wallet_id,
        amount=command.amount,
        currency=command.currency,
        description=command.description,
        initiated_by=command.initiated_by,
        created_at=now,
        completed_at=now if status is TransferStatus.COMPLETED else None,
        failure_code=failure_code,
        failure_param=failure_param,
        postings=postings,
        risk=command.risk,
        hold_expires_at=hold_expires_at,
    )


@dataclass(slots=True)
class Settlement:
    transfer: Transfer
    postings: list[Posting]
    accounts: list[Account]


def settle_hold(
    transfer: Transfer,
    debit: Account,
    credit: Account,
    action: HoldAction,
    now: datetime,
    by: str,
) -> Settlement:
    """Post (approve) or void (reject, expire) a pending transfer; the caller holds the locks.

    Posting moves the reserved amount: the sender's balance drops by it (its available balance
    already did when the hold was placed) and the receiver's balance and available balance
    rise. Voiding gives the sender its available balance back. Nothing else changes.
    """
    if transfer.status is not TransferStatus.PENDING_REVIEW:
        raise ValueError(f"transfer {transfer.id} is {transfer.status}, not pending review")
    amount = transfer.amount
    status = action.outcome
    resolved = replace(
        transfer,
        status=status,
        completed_at=now if status is TransferStatus.COMPLETED else None,
        resolved_at=now,
        resolved_by=by,
    )
    if action is not HoldAction.APPROVE:
        released = replace(debit, available_balance=debit.available_balance + amount)
        return Settlement(resolved, [], [released])
    debit_after = replace(debit, balance=debit.balance - amount)
    credit_after = replace(
        credit,
        balance=credit.balance + amount,
        available_balance=credit.available_balance + amount,
    )
    postings = [
        Posting(transfer.id, debit.id, transfer.currency, -amount, debit.balance,
                debit_after.balance),
        Posting(transfer.id, credit.id, transfer.currency, amount, credit.balance,
                credit_after.balance),
    ]  # fmt: skip
    return Settlement(replace(resolved, postings=tuple(postings)), postings,
                      [debit_after, credit_after])  # fmt: skip

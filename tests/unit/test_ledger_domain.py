"""The posting rules: a batch gives exactly the outcomes of sequential execution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steadypay.ledger.domain import (
    Account,
    AccountKind,
    FailureCode,
    HoldAction,
    Risk,
    TransferCommand,
    TransferStatus,
    TransferType,
    apply_batch,
    settle_hold,
)
from steadypay.money import MAX_BALANCE_MINOR

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WALLETS = [uuid.UUID(int=i + 1) for i in range(4)]
SYSTEM = Account(uuid.UUID(int=99), AccountKind.SYSTEM, "USD", 0, 0)


def user(wallet_id: uuid.UUID, balance: int, currency: str = "USD") -> Account:
    return Account(wallet_id, AccountKind.USER, currency, balance, balance)


def transfer(src: uuid.UUID, dst: uuid.UUID, amount: int, currency: str = "USD") -> TransferCommand:
    return TransferCommand(uuid.uuid4(), TransferType.TRANSFER, src, dst, amount, currency, "t")


def deposit(dst: uuid.UUID, amount: int) -> TransferCommand:
    return TransferCommand(uuid.uuid4(), TransferType.DEPOSIT, None, dst, amount, "USD", "t")


def withdrawal(src: uuid.UUID, amount: int) -> TransferCommand:
    return TransferCommand(uuid.uuid4(), TransferType.WITHDRAWAL, src, None, amount, "USD", "t")


def test_failure_does_not_affect_neighbours_and_order_holds() -> None:
    a, b = WALLETS[:2]
    accounts = {a: user(a, 1000), b: user(b, 0)}
    result = apply_batch(
        [transfer(a, b, 600), transfer(a, b, 600), transfer(b, a, 100), transfer(a, b, 500)],
        accounts,
        {"USD": SYSTEM},
        NOW,
    )
    assert [t.status for t in result.transfers] == [
        TransferStatus.COMPLETED, TransferStatus.FAILED, TransferStatus.COMPLETED,
        TransferStatus.COMPLETED,
    ]  # fmt: skip
    assert result.transfers[1].failure_code is FailureCode.INSUFFICIENT_FUNDS
    assert result.accounts[a].balance == 0
    assert result.accounts[b].balance == 1000
    # postings chain within the batch
    a_postings = [p for p in result.postings if p.wallet_id == a]
    assert [(p.balance_before, p.balance_after) for p in a_postings] == [
        (1000, 400), (400, 500), (500, 0),
    ]  # fmt: skip


def test_deposits_and_withdrawals_post_against_the_system_account() -> None:
    a = WALLETS[0]
    result = apply_batch(
        [deposit(a, 500), withdrawal(a, 200)], {a: user(a, 0)}, {"USD": SYSTEM}, NOW
    )
    assert result.accounts[a].balance == 300
    assert result.accounts[SYSTEM.id].balance == -300
    assert sum(p.amount for p in result.postings) == 0


def test_business_failures() -> None:
    a, b, c = WALLETS[:3]
    accounts = {a: user(a, 100), b: user(b, 0, "EUR"), SYSTEM.id: SYSTEM}
    result = apply_batch(
        [
            transfer(a, b, 10),  # b is EUR
            transfer(a, c, 10),  # c does not exist
            transfer(c, a, 10),
            transfer(a, SYSTEM.id, 10),  # a system account is not a wallet
            deposit(b, 10),  # deposit in USD to an EUR wallet
        ],
        accounts,
        {"USD": SYSTEM},
        NOW,
    )
    assert [(t.failure_code, t.failure_param) for t in result.transfers] == [
        (FailureCode.CURRENCY_MISMATCH, "currency"),
        (FailureCode.WALLET_NOT_FOUND, "to_wallet_id"),
        (FailureCode.WALLET_NOT_FOUND, "from_wallet_id"),
        (FailureCode.WALLET_NOT_FOUND, "to_wallet_id"),
        (FailureCode.CURRENCY_MISMATCH, "currency"),
    ]
    assert result.postings == []
    assert result.accounts == {}


def test_currency_without_system_account_is_a_mismatch() -> None:
    a = WALLETS[0]
    result = apply_batch(
        [
            TransferCommand(uuid.uuid4(), TransferType.WITHDRAWAL, a, None, 1, "ISK", "t"),
            TransferCommand(uuid.uuid4(), TransferType.DEPOSIT, None, a, 1, "ISK", "t"),
        ],
        {a: user(a, 100)},
        {"USD": SYSTEM},
        NOW,
    )
    assert [t.failure_code for t in result.transfers] == [FailureCode.CURRENCY_MISMATCH] * 2


def test_balance_limit() -> None:
    a = WALLETS[0]
    result = apply_batch([deposit(a, 2)], {a: user(a, MAX_BALANCE_MINOR - 1)}, {"USD": SYSTEM}, NOW)
    assert result.transfers[0].failure_code is FailureCode.BALANCE_LIMIT_EXCEEDED


def _safe_transfer(src: uuid.UUID, dst: uuid.UUID, amount: int) -> TransferCommand | None:
    return None if src == dst else transfer(src, dst, amount)


batches = st.lists(
    st.one_of(
        st.builds(_safe_transfer, st.sampled_from(WALLETS), st.sampled_from(WALLETS),
                  st.integers(1, 500)),
        st.builds(deposit, st.sampled_from(WALLETS), st.integers(1, 500)),
        st.builds(withdrawal, st.sampled_from(WALLETS), st.integers(1, 500)),
    ),
    max_size=40,
).map(lambda xs: [x for x in xs if x is not None])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(batch=batches, balances=st.lists(st.integers(0, 1000), min_size=4, max_size=4))
def test_batch_equals_one_by_one_and_conserves_money(
    batch: list[TransferCommand], balances: list[int]
) -> None:
    start = {w: user(w, b) for w, b in zip(WALLETS, balances, strict=True)}
    together = apply_batch(batch, start, {"USD": SYSTEM}, NOW)

    state = dict(start)
    system = SYSTEM
    one_by_one = []
    for command in batch:
        single = apply_batch([command], state, {"USD": system}, NOW)
        one_by_one.append(single.transfers[0])
        for account in single.accounts.values():
            if account.kind is AccountKind.SYSTEM:
                system = account
            else:
                state[account.id] = account

    assert [(t.id, t.status, t.failure_code) for t in together.transfers] == [
        (t.id, t.status, t.failure_code) for t in one_by_one
    ]
    final = {w: together.accounts.get(w, start[w]).balance for w in WALLETS}
    assert final == {w: state[w].balance for w in WALLETS}
    assert all(balance >= 0 for balance in final.values())
    system_after = together.accounts.get(SYSTEM.id, SYSTEM).balance
    assert sum(final.values()) + system_after == sum(balances)  # conservation incl. system
    assert sum(p.amount for p in together.postings) == 0


def _maybe_held(src: uuid.UUID, dst: uuid.UUID, amount: int, held: bool) -> TransferCommand | None:
    if src == dst:
        return None
    risk = Risk(None, "fallback", ("test",), review=held)
    return TransferCommand(uuid.uuid4(), TransferType.TRANSFER, src, dst, amount, "USD", "t",
                           risk=risk)  # fmt: skip


held_batches = st.lists(
    st.builds(_maybe_held, st.sampled_from(WALLETS), st.sampled_from(WALLETS),
              st.integers(1, 500), st.booleans()),
    max_size=30,
).map(lambda xs: [x for x in xs if x is not None])  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(batch=held_batches, balances=st.lists(st.integers(0, 1000), min_size=4, max_size=4))
def test_holds_reserve_without_moving_money(
    batch: list[TransferCommand], balances: list[int]
) -> None:
    start = {w: user(w, b) for w, b in zip(WALLETS, balances, strict=True)}
    result = apply_batch(batch, start, {"USD": SYSTEM}, NOW)
    final = {w: result.accounts.get(w, start[w]) for w in WALLETS}
    held = dict.fromkeys(WALLETS, 0)
    for t in result.transfers:
        if t.status is TransferStatus.PENDING_REVIEW:
            assert t.from_wallet_id is not None
            held[t.from_wallet_id] += t.amount
            assert t.postings == ()
            assert t.hold_expires_at == NOW + timedelta(hours=72)
    for w in WALLETS:
        assert final[w].available_balance == final[w].balance - held[w]
        assert final[w].available_balance >= 0
    assert sum(a.balance for a in final.values()) == sum(balances)  # holds move nothing


def test_settling_a_hold_posts_or_voids_exactly_once() -> None:
    a, b = WALLETS[:2]
    risk = Risk(None, "fallback", (), review=True)
    command = TransferCommand(uuid.uuid4(), TransferType.TRANSFER, a, b, 300, "USD", "t",
                              risk=risk)  # fmt: skip
    result = apply_batch([command], {a: user(a, 1000), b: user(b, 0)}, {"USD": SYSTEM}, NOW)
    [hold] = result.transfers
    debit, credit = result.accounts[a], user(b, 0)
    assert (debit.balance, debit.available_balance) == (1000, 700)
    posted = settle_hold(hold, debit, credit, HoldAction.APPROVE, NOW, "admin")
    assert posted.transfer.status is TransferStatus.COMPLETED
    assert [(x.balance, x.available_balance) for x in posted.accounts] == [(700, 700), (300, 300)]
    assert sum(p.amount for p in posted.postings) == 0
    voided = settle_hold(hold, debit, credit, HoldAction.EXPIRE, NOW, "system")
    assert voided.transfer.status is TransferStatus.EXPIRED
    assert [(x.balance, x.available_balance) for x in voided.accounts] == [(1000, 1000)]
    assert voided.postings == []
    with pytest.raises(ValueError, match="not pending review"):
        settle_hold(posted.transfer, debit, credit, HoldAction.REJECT, NOW, "admin")

"""The bank workload: drive a running steadypay over its public HTTP API the way an impatient,
retrying client would, and write down everything that happened.

N wallets (one user each) are funded by deposits; C concurrent clients then make random
transfers between them, each with a unique ``Idempotency-Key``. On a timeout, a connection error,
a 5xx or a 409 ``idempotency_key_in_use`` the client retries **with the same key and body**
(full jitter) until it gets a definite answer (2xx, or a 4xx that is final) or its give-up time
passes, and records the operation as ``ok``, ``failed`` or ``unknown``. A share of operations is
sent twice at once with the same key (``duplicate``); a share reuses an earlier key with a
different amount (``reuse``), which must be refused and must never move money.

Every operation becomes one JSON line of the history (see :class:`Op`); the checker
(:mod:`steadypay.chaos.checker`) reads the history and the ledger and says whether money was
conserved and every acknowledged payment exists exactly once. Each transfer's description is
``bank:<key>``, so the ledger itself can be grouped by idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from steadypay.money import Currency, format_amount, get_currency
from steadypay.resilience.retry import retry_delay_s

Outcome = Literal["ok", "failed", "unknown"]
Kind = Literal["transfer", "duplicate", "reuse"]
RETRYABLE_CODES = frozenset({"idempotency_key_in_use"})


@dataclass(frozen=True, slots=True)
class BankOptions:
    wallets: int = 8
    clients: int = 8
    duration_s: float = 10.0
    max_ops: int | None = None
    currency: str = "USD"
    initial_minor: int = 100_000
    """each wallet's opening deposit (1,000.00): large enough for most transfers to succeed"""
    max_amount_minor: int = 2_000
    duplicate_share: float = 0.05
    reuse_share: float = 0.02
    request_timeout_s: float = 2.0
    give_up_s: float = 10.0
    retry_base_s: float = 0.05
    retry_cap_s: float = 1.0
    seed: int | None = None


@dataclass(slots=True)
class Op:
    """One operation of the history (one JSON line)."""

    op: int
    client: int
    kind: Kind
    key: str
    from_wallet: str
    to_wallet: str
    amount_minor: int
    started: float
    """seconds since the run started"""
    ended: float = 0.0
    attempts: int = 0
    outcome: Outcome = "unknown"
    status: int | None = None
    code: str | None = None
    transfer_id: str | None = None
    transfer_status: str | None = None
    ack_amount: str | None = None
    ack_from: str | None = None
    ack_to: str | None = None
    reused_key_of: int | None = None
    errors: list[str] = field(default_factory=list)
    tries: list[tuple[float, float, str]] = field(default_factory=list)
    """each attempt: (sent, answered or given up) in ``time.monotonic()``, and its status code
    or error name"""

    def json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(slots=True)
class Setup:
    currency: Currency
    wallets: list[str]
    initial_minor: int
    run_id: str


@dataclass(slots=True)
class BankRun:
    setup: Setup
    ops: list[Op]
    started_at: float
    """``time.time()`` at the start of the operations"""
    duration_s: float
    started_monotonic: float = 0.0
    """``time.monotonic()`` at the start: ``Op.started``/``ended`` are seconds after it"""


class BankClient:
    """The HTTP side of the workload: one shared httpx client, admin credentials."""

    def __init__(self, base_url: str, admin_key: str, options: BankOptions) -> None:
        self.options = options
        self._rng = random.Random(options.seed)  # noqa: S311 -- backoff jitter, not security
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(options.request_timeout_s),
            headers={"Authorization": f"Bearer {admin_key}"},
            limits=httpx.Limits(max_connections=options.clients * 2 + 4),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def must(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A setup call that must succeed (retried with the same key through faults)."""
        deadline = time.monotonic() + max(self.options.give_up_s, 30.0)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(method, path, **kwargs)
                if response.status_code < 300:
                    body: dict[str, Any] = response.json()
                    return body
                if response.status_code < 500 and response.status_code != 429:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: no definite answer (steadypay down?)")
            await asyncio.sleep(retry_delay_s(attempt, 0.1, 2.0, self._rng.random))

    async def set_up(self, run_id: str) -> Setup:
        o = self.options
        wallets: list[str] = []
        for i in range(o.wallets):
            key = f"bank-{run_id}-user-{i}"
            user = await self.must(
                "POST",
                "/v1/users",
                json={"name": f"bank {i}", "email": f"bank-{run_id}-{i}@example.com"},
                headers={"Idempotency-Key": key},
            )
            wallet = await self.must(
                "POST",
                "/v1/wallets",
                json={"user_id": user["id"], "currency": o.currency},
                headers={"Idempotency-Key": key + "-wallet"},
            )
            wallets.append(wallet["id"])
        currency = get_currency(o.currency)
        for i, wallet_id in enumerate(wallets):
            await self.must(
                "POST",
                "/v1/deposits",
                json={
                    "wallet_id": wallet_id,
                    "amount": format_amount(o.initial_minor, currency),
                    "currency": o.currency,
                },
                headers={"Idempotency-Key": f"bank-{run_id}-deposit-{i}"},
            )
        return Setup(currency, wallets, o.initial_minor, run_id)

    async def attempt_transfer(self, op: Op, amount: str, give_up_s: float) -> None:
        """Send ``op`` until a definite answer or ``give_up_s``; fill in its outcome."""
        body = {
            "from_wallet_id": op.from_wallet,
            "to_wallet_id": op.to_wallet,
            "amount": amount,
            "currency": self.options.currency,
            "description": f"bank:{op.key}",
        }
        deadline = time.monotonic() + give_up_s
        while True:
            op.attempts += 1
            sent = time.monotonic()
            try:
                response = await self.http.post(
                    "/v1/transfers", json=body, headers={"Idempotency-Key": op.key}
                )
            except httpx.TransportError as exc:
                op.errors.append(type(exc).__name__)
                op.tries.append((sent, time.monotonic(), type(exc).__name__))
            else:
                op.status = response.status_code
                op.tries.append((sent, time.monotonic(), str(response.status_code)))
                if self._definite(op, response):
                    return
            if time.monotonic() + 0.05 > deadline:
                op.outcome = "unknown"
                return
            o = self.options
            delay = retry_delay_s(op.attempts, o.retry_base_s, o.retry_cap_s, self._rng.random)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))

    def _definite(self, op: Op, response: httpx.Response) -> bool:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if status >= 500 or status == 429 or code in RETRYABLE_CODES:
            op.errors.append(str(code or status))
            return False
        op.code = code
        if 200 <= status < 300 and isinstance(payload, dict):
            op.outcome = "ok"
            op.transfer_id = payload.get("id")
            op.transfer_status = payload.get("status")
            op.ack_amount = payload.get("amount")
            op.ack_from = payload.get("from_wallet_id")
            op.ack_to = payload.get("to_wallet_id")
        else:
            op.outcome = "failed"
            if isinstance(error, dict) and isinstance(error.get("transfer_id"), str):
                op.transfer_id = error["transfer_id"]
        return True


async def run_workload(
    client: BankClient,
    options: BankOptions,
    history: Path | None = None,
    *,
    on_op: Callable[[Op], Awaitable[None]] | None = None,
    setup: Setup | None = None,
    stop: asyncio.Event | None = None,
) -> BankRun:
    """Run the clients for ``duration_s`` (or ``max_ops``, or until ``stop`` is set: each
    client then finishes the operation it is on) on the wallets of ``setup`` (made now through
    ``client`` if not given: creating users and wallets is not idempotent, so set up before
    injecting faults)."""
    if setup is None:
        setup = await client.set_up(uuid.uuid4().hex[:10])
    run_id = setup.run_id
    rng = random.Random(options.seed)  # noqa: S311 -- a replayable workload, not security
    ops: list[Op] = []
    counter = 0
    started_wall = time.time()
    started = time.monotonic()
    stop_at = started + options.duration_s
    acknowledged: list[Op] = []
    out = history.open("w") if history else None

    def new_op(client_no: int, kind: Kind) -> Op:
        nonlocal counter
        counter += 1
        source, target = rng.sample(setup.wallets, 2)
        return Op(
            op=counter,
            client=client_no,
            kind=kind,
            key=f"bank-{run_id}-{counter}",
            from_wallet=source,
            to_wallet=target,
            amount_minor=rng.randint(1, options.max_amount_minor),
            started=round(time.monotonic() - started, 4),
        )

    def record(op: Op) -> None:
        op.ended = round(time.monotonic() - started, 4)
        ops.append(op)
        if op.outcome == "ok" and op.kind != "reuse":
            acknowledged.append(op)
        if out is not None:
            out.write(op.json() + "\n")

    async def one(op: Op) -> None:
        amount = format_amount(op.amount_minor, setup.currency)
        await client.attempt_transfer(op, amount, options.give_up_s)
        record(op)
        if on_op is not None:
            await on_op(op)

    async def worker(client_no: int) -> None:
        while (
            time.monotonic() < stop_at
            and (options.max_ops is None or counter < options.max_ops)
            and (stop is None or not stop.is_set())
        ):
            draw = rng.random()
            if draw < options.reuse_share and acknowledged:
                earlier = rng.choice(acknowledged)
                op = new_op(client_no, "reuse")
                op.key, op.from_wallet, op.to_wallet = (
                    earlier.key,
                    earlier.from_wallet,
                    earlier.to_wallet,
                )
                op.amount_minor = earlier.amount_minor % options.max_amount_minor + 1
                op.reused_key_of = earlier.op
                await one(op)
            elif draw < options.reuse_share + options.duplicate_share:
                first = new_op(client_no, "duplicate")
                twin = new_op(client_no, "duplicate")
                twin.key, twin.from_wallet, twin.to_wallet = (
                    first.key,
                    first.from_wallet,
                    first.to_wallet,
                )
                twin.amount_minor = first.amount_minor
                await asyncio.gather(one(first), one(twin))
            else:
                await one(new_op(client_no, "transfer"))

    try:
        await asyncio.gather(*(worker(i) for i in range(options.clients)))
    finally:
        if out is not None:
            out.close()
    return BankRun(setup, ops, started_wall, time.monotonic() - started, started)

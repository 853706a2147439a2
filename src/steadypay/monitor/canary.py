"""The payment-processing check: a synthetic canary through the public HTTP API.

Each run moves a tiny amount (1 minor unit by default) from one canary wallet to the other and
back, each leg a real ``POST /v1/transfers`` with its own ``Idempotency-Key`` and the sending
canary user's own API key, then verifies:

- through the API: both transfers ``completed``, both wallet balances back to where they were;
- through the ledger: the four entries exist and each transfer's entries sum to zero, and each
  canary wallet's balance equals the sum of its entries.

Only the two canary users' wallets are touched. They are created once, idempotently, through
the admin API (users, then wallets; a user or wallet that already exists is looked up), and
topped up by an admin deposit whenever neither holds the amount. Their ids live in
``monitor.canary``.

**The canary keys.** Keys are stored hashed, so the monitor cannot read one back. It derives
each canary user's key from the admin key (HMAC-SHA256 with a fixed label) and, on start, sets
the user's stored hash to it: every monitor sharing the admin key computes the same keys, so
several monitors never invalidate each other's, and nothing secret is written anywhere. The
keys live only in memory and are never logged.

Runs of several monitors are serialised by a session advisory lock, so one monitor's canary
never sees another's money in flight.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from steadypay.db.router import DatabaseRouter
from steadypay.identity.domain import API_KEY_PREFIX, hash_api_key
from steadypay.money import format_amount, get_currency
from steadypay.monitor import repository as repo
from steadypay.monitor.domain import ComponentResult, Status

SETUP_LOCK_KEY = 0x5354_4D4F_4E43_5355  # serialises creating the canary's accounts
RUN_LOCK_KEY = 0x5354_4D4F_4E43_5255  # serialises canary runs of several monitors
LABELS = ("a", "b")
EMAIL_DOMAIN = "canary.steadypay.dev"


def canary_email(label: str) -> str:
    return f"monitor-canary-{label}@{EMAIL_DOMAIN}"


def canary_key(admin_key: str, label: str) -> str:
    """The canary user's API key, derived from the admin key (never stored, never logged)."""
    digest = hmac.new(
        admin_key.encode(), f"steadypay-monitor-canary:{label}".encode(), hashlib.sha256
    ).digest()
    return API_KEY_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class CanaryProblem(Exception):
    """Ends a canary run early with a status and a one-line detail; never leaves this module."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    available: int


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http {response.status_code}"


class Canary:
    def __init__(
        self,
        http: httpx.AsyncClient,
        db: DatabaseRouter,
        admin_key: str,
        *,
        currency: str = "USD",
        amount_minor: int = 1,
        top_up_minor: int = 100,
    ) -> None:
        """``http`` has the API's base URL and a timeout on every request."""
        if amount_minor <= 0 or top_up_minor < amount_minor:
            raise ValueError("the canary amount must be positive and at most the top-up")
        self._http = http
        self._db = db
        self._admin = {"Authorization": f"Bearer {admin_key}"}
        self._keys = {label: canary_key(admin_key, label) for label in LABELS}
        self._currency = get_currency(currency)
        self._amount = amount_minor
        self._top_up = top_up_minor
        self._accounts: repo.CanaryAccounts | None = None

    @property
    def accounts(self) -> repo.CanaryAccounts | None:
        return self._accounts

    async def __call__(self) -> ComponentResult:
        started = time.perf_counter()
        try:
            accounts = await self.setup()
            async with self._db.writer().connection() as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", RUN_LOCK_KEY)
                try:
                    observed = await self._exercise(accounts, conn)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", RUN_LOCK_KEY)
        except CanaryProblem as problem:
            return ComponentResult(
                "payments", problem.status, time.perf_counter() - started, problem.detail
            )
        return ComponentResult(
            "payments", Status.PASS, time.perf_counter() - started, None, observed
        )

    # --- setup ---------------------------------------------------------------------------

    async def setup(self) -> repo.CanaryAccounts:
        """The canary's users and wallets (created once), with their derived keys installed."""
        if self._accounts is not None:
            return self._accounts
        async with self._db.writer().connection() as conn:
            accounts = await repo.load_canary(conn)
            if accounts is None:
                await conn.execute("SELECT pg_advisory_lock($1)", SETUP_LOCK_KEY)
                try:
                    accounts = await repo.load_canary(conn) or await self._create(conn)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", SETUP_LOCK_KEY)
            for label, user_id in zip(LABELS, (accounts.user_a, accounts.user_b), strict=True):
                await repo.set_api_key_hash(conn, user_id, hash_api_key(self._keys[label]))
        self._accounts = accounts
        return accounts

    async def _create(self, conn: asyncpg.Connection) -> repo.CanaryAccounts:
        ids: list[UUID] = []
        for label in LABELS:
            user_id = await self._create_user(conn, label)
            ids += [user_id, await self._open_wallet(conn, user_id)]
        accounts = repo.CanaryAccounts(self._currency.code, *ids)
        await repo.save_canary(conn, accounts)
        return accounts

    async def _create_user(self, conn: asyncpg.Connection, label: str) -> UUID:
        email = canary_email(label)
        body = {"name": f"steadypay monitor canary {label.upper()}", "email": email}
        r = await self._http.post("/v1/users", json=body, headers=self._admin)
        if r.status_code == 201:
            return UUID(r.json()["id"])  # its random key is dropped: the derived one replaces it
        if r.status_code == 409:
            existing = await repo.user_id_by_email(conn, email)
            if existing is not None:
                return existing
        raise CanaryProblem(Status.FAIL, f"creating the canary user: {_error_code(r)}")

    async def _open_wallet(self, conn: asyncpg.Connection, user_id: UUID) -> UUID:
        body = {"user_id": str(user_id), "currency": self._currency.code}
        r = await self._http.post("/v1/wallets", json=body, headers=self._admin)
        if r.status_code == 201:
            return UUID(r.json()["id"])
        if r.status_code == 409:
            existing = await repo.wallet_id_of(conn, user_id, self._currency.code)
            if existing is not None:
                return existing
        raise CanaryProblem(Status.FAIL, f"opening a canary wallet: {_error_code(r)}")

    # --- one run -------------------------------------------------------------------------

    def _auth(self, label: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._keys[label]}"}

    def _minor(self, text: str) -> int:
        value = int(text.replace(".", ""))
        if format_amount(value, self._currency) != text:  # not in the currency's own format
            raise CanaryProblem(Status.FAIL, f"unexpected amount {text!r} from the API")
        return value

    async def _balances(self, accounts: repo.CanaryAccounts) -> dict[str, Balance]:
        out: dict[str, Balance] = {}
        for label, wallet_id in (("a", accounts.wallet_a), ("b", accounts.wallet_b)):
            r = await self._http.get(f"/v1/wallets/{wallet_id}", headers=self._auth(label))
            if r.status_code != 200:
                raise CanaryProblem(Status.FAIL, f"reading a canary wallet: {_error_code(r)}")
            body = r.json()
            out[label] = Balance(
                self._minor(body["balance"]), self._minor(body["available_balance"])
            )
        return out

    async def _deposit(self, wallet_id: UUID, amount: int) -> None:
        body = {
            "wallet_id": str(wallet_id),
            "amount": format_amount(amount, self._currency),
            "currency": self._currency.code,
        }
        headers = self._admin | {"Idempotency-Key": f"monitor-canary-top-up-{uuid.uuid4()}"}
        r = await self._http.post("/v1/deposits", json=body, headers=headers)
        if r.status_code != 201:
            raise CanaryProblem(Status.FAIL, f"topping up the canary: {_error_code(r)}")

    async def _transfer(
        self, run: str, leg: str, sender: str, from_id: UUID, to_id: UUID
    ) -> dict[str, Any]:
        body = {
            "from_wallet_id": str(from_id),
            "to_wallet_id": str(to_id),
            "amount": format_amount(self._amount, self._currency),
            "currency": self._currency.code,
            "description": "steadypay monitor canary",
        }
        headers = self._auth(sender) | {"Idempotency-Key": f"monitor-canary-{run}-{leg}"}
        r = await self._http.post("/v1/transfers", json=body, headers=headers)
        if r.status_code != 201:
            raise CanaryProblem(Status.FAIL, f"canary transfer ({leg}) refused: {_error_code(r)}")
        transfer: dict[str, Any] = r.json()
        if transfer["status"] == "pending_review":
            # Payments work; the risk rules held it. Release the money and report a warning.
            await self._http.post(f"/v1/transfers/{transfer['id']}/reject", headers=self._admin)
            raise CanaryProblem(Status.WARN, f"canary transfer ({leg}) held for review; rejected")
        if transfer["status"] != "completed":
            raise CanaryProblem(Status.FAIL, f"canary transfer ({leg}) is {transfer['status']}")
        return transfer

    async def _exercise(
        self, accounts: repo.CanaryAccounts, conn: asyncpg.Connection
    ) -> dict[str, Any]:
        before = await self._balances(accounts)
        if before["a"].available < self._amount and before["b"].available < self._amount:
            await self._deposit(accounts.wallet_a, self._top_up)
            before = await self._balances(accounts)
        wallets = {"a": accounts.wallet_a, "b": accounts.wallet_b}
        src, dst = ("a", "b") if before["a"].available >= self._amount else ("b", "a")
        run = uuid.uuid4().hex
        out = await self._transfer(run, "out", src, wallets[src], wallets[dst])
        back = await self._transfer(run, "back", dst, wallets[dst], wallets[src])
        ids = [UUID(out["id"]), UUID(back["id"])]

        for label, transfer_id in ((src, ids[0]), (dst, ids[1])):
            r = await self._http.get(f"/v1/transfers/{transfer_id}", headers=self._auth(label))
            if r.status_code != 200 or r.json().get("status") != "completed":
                raise CanaryProblem(Status.FAIL, f"canary transfer {transfer_id} not completed")
        after = await self._balances(accounts)
        if {k: v.balance for k, v in after.items()} != {k: v.balance for k, v in before.items()}:
            raise CanaryProblem(Status.FAIL, "canary balances did not return to their start")

        entries, balances = await repo.ledger_view(conn, ids, list(wallets.values()))
        for transfer_id in ids:
            legs = [e for e in entries if e["transfer_id"] == transfer_id]
            if len(legs) != 2 or sum(e["amount"] for e in legs) != 0:
                raise CanaryProblem(Status.FAIL, f"ledger entries of {transfer_id} are wrong")
        for row in balances:
            if row["balance"] != row["entries_total"]:
                raise CanaryProblem(Status.FAIL, "a canary balance differs from its entries")
        return {
            "transfers": [str(i) for i in ids],
            "amount": format_amount(self._amount, self._currency),
            "currency": self._currency.code,
        }

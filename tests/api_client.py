"""A small client for the API and factories of valid random data, for tests."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


@dataclass
class Api:
    """Talks real HTTP to a steadypay; every helper asserts the status it expects."""

    http: httpx.AsyncClient
    admin_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    async def post(
        self, path: str, body: Any, *, key: str | None = None, idem: str | None = None
    ) -> httpx.Response:
        headers = self.auth(key)
        if idem is not None:
            headers["Idempotency-Key"] = idem
        return await self.http.post(path, json=body, headers=headers)

    async def get(self, path: str, *, key: str | None = None, **params: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.auth(key), params=params)

    async def user(self, name: str = "Test User") -> dict[str, Any]:
        email = f"u{secrets.token_hex(6)}@example.com"
        r = await self.post("/v1/users", {"name": name, "email": email})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wallet(self, user_id: str, currency: str = "USD") -> dict[str, Any]:
        r = await self.post("/v1/wallets", {"user_id": user_id, "currency": currency})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def funded_wallet(
        self, amount: str = "100.00", currency: str = "USD"
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new user and a wallet holding ``amount``."""
        user = await self.user()
        wallet = await self.wallet(user["id"], currency)
        if amount:
            await self.deposit(wallet["id"], amount, currency)
        return user, wallet

    async def deposit(self, wallet_id: str, amount: str, currency: str = "USD") -> dict[str, Any]:
        r = await self.post(
            "/v1/deposits",
            {"wallet_id": wallet_id, "amount": amount, "currency": currency},
            idem=new_key(),
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def transfer(
        self,
        from_id: str,
        to_id: str,
        amount: str,
        currency: str = "USD",
        *,
        key: str | None = None,
        idem: str | None = None,
    ) -> httpx.Response:
        return await self.post(
            "/v1/transfers",
            {"from_wallet_id": from_id, "to_wallet_id": to_id, "amount": amount,
             "currency": currency},
            key=key,
            idem=idem or new_key(),
        )  # fmt: skip

    async def balance(self, wallet_id: str) -> str:
        r = await self.get(f"/v1/wallets/{wallet_id}")
        assert r.status_code == 200, r.text
        value: str = r.json()["balance"]
        return value

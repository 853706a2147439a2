"""`steadypay demo`: drive a running steadypay over HTTP and show what happened."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table


class DemoError(Exception):
    pass


def _call(client: httpx.Client, method: str, path: str, key: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if method == "POST" and path != "/v1/users" and path != "/v1/wallets":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    response = client.request(method, path, headers=headers, **kwargs)
    body = response.json()
    if response.status_code >= 400 and response.status_code != 422:
        raise DemoError(f"{method} {path} -> {response.status_code}: {body}")
    return body


def run_demo(url: str, admin_key: str) -> None:
    console = Console()
    suffix = secrets.token_hex(3)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        people = {}
        for name in ("alice", "bob"):
            user = _call(
                client,
                "POST",
                "/v1/users",
                admin_key,
                json={"name": name.title(), "email": f"{name}.{suffix}@example.com"},
            )
            wallet = _call(
                client,
                "POST",
                "/v1/wallets",
                admin_key,
                json={"user_id": user["id"], "currency": "USD"},
            )
            people[name] = (user, wallet)
        alice, bob = people["alice"], people["bob"]
        steps = [
            ("deposit 100.00 to Alice", "/v1/deposits", admin_key,
             {"wallet_id": alice[1]["id"], "amount": "100.00", "currency": "USD"}),
            ("Alice pays Bob 42.50", "/v1/transfers", alice[0]["api_key"],
             {"from_wallet_id": alice[1]["id"], "to_wallet_id": bob[1]["id"],
              "amount": "42.50", "currency": "USD", "description": "dinner"}),
            ("Bob pays Alice 500.00 (too much)", "/v1/transfers", bob[0]["api_key"],
             {"from_wallet_id": bob[1]["id"], "to_wallet_id": alice[1]["id"],
              "amount": "500.00", "currency": "USD"}),
            ("Bob withdraws 10.00", "/v1/withdrawals", bob[0]["api_key"],
             {"wallet_id": bob[1]["id"], "amount": "10.00", "currency": "USD"}),
        ]  # fmt: skip
        table = Table(title=f"steadypay demo against {url}")
        for column in ("step", "status", "amount", "result"):
            table.add_column(column)
        for title, path, key, body in steps:
            result = _call(client, "POST", path, key, json=body)
            if "error" in result:
                table.add_row(title, "failed", body["amount"], result["error"]["code"])
            else:
                table.add_row(title, result["status"], result["amount"], result["id"])
        console.print(table)
        balances = Table(title="balances")
        for column in ("user", "balance", "available"):
            balances.add_column(column)
        for name, (_, wallet) in people.items():
            now = _call(client, "GET", f"/v1/wallets/{wallet['id']}", admin_key)
            balances.add_row(name, now["balance"], now["available_balance"])
        console.print(balances)

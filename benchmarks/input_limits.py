"""What the input limits cost per request (issue 14): the InputLimitMiddleware around an ASGI
app that reads its body, against the app alone, in memory (no socket, no framework).

    .venv/bin/python benchmarks/input_limits.py
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from steadypay.http.limits import InputLimitMiddleware, InputLimits
from steadypay.http.strict_json import problem


async def app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body", False):
        pass


def transfer() -> dict[str, str]:
    return {
        "from_wallet_id": str(uuid.uuid4()),
        "to_wallet_id": str(uuid.uuid4()),
        "amount": "12.34",
        "currency": "USD",
        "description": "rent for march",
    }


def best_us(call: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            call()
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    return best


async def per_request_us(asgi: Any, body: bytes, rounds: int) -> float:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {"type": "http", "method": "POST", "path": "/v1/transfers/batch", "headers": headers}
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Any:
        return message

    async def send(_: Any) -> None:
        pass

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await asgi(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    return best


async def main() -> None:
    limits = InputLimits(batch_paths=frozenset({"/v1/transfers/batch"}))
    guarded = InputLimitMiddleware(app, limits)
    single = json.dumps(transfer()).encode()
    batch = json.dumps({"transfers": [transfer() for _ in range(8189)]}).encode()
    for name, body, rounds in (("transfer", single, 20_000), ("batch of 8,189", batch, 5)):
        bare = await per_request_us(app, body, rounds)
        full = await per_request_us(guarded, body, rounds)
        check = best_us(lambda: problem(body, limits.max_json_depth), rounds)  # noqa: B023
        parse = best_us(lambda: json.loads(body), rounds)  # noqa: B023
        print(
            f"{name:>15} ({len(body):>9,} B): middleware +{full - bare:8.1f} µs/request "
            f"(strict check {check:8.1f} µs, plain json.loads {parse:8.1f} µs)"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""Issue 14, finding 9: webhook deliveries cannot be aimed at internal addresses.

The notification service runs for real on loopback with a policy as production's (nothing
private allowed) but registration as development's (so that a loopback URL can be registered
at all): ``http://127.0.0.1:<port>`` used to be delivered to, and so was a name resolving to a
private address, which no registration-time check can see. Then the guard's transport alone:
it connects to the address it checked (one resolution per connection), keeps the name for the
``Host`` header, SNI and certificate verification, and refuses a name with any internal
address, and metadata addresses even when their network is allowed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import Environment, Settings
from steadypay.notifications.egress import DeliveryRefused, PinnedTransport
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.urls import AddressPolicy
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, free_port, serve

# Registration as in development; delivery as in production (no network allowed).
GUARDED = NotificationOptions(
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    poll_interval_s=0.05,
    lease_s=5,
    delivery_timeout_s=1,
    allow_private_urls=True,
    allowed_networks=(),
)


class Receiver:
    """Records every request it gets (path, Host header); answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    async def receive(self, request: Request) -> Response:
        self.requests.append((request.url.path, request.headers.get("host", "")))
        return Response(status_code=200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{name}", self.receive, methods=["POST"])])


def refused_total(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "steadypay_webhook_deliveries_refused_total", {"reason": reason}
    )
    return value or 0.0


@pytest.fixture(scope="module")
def settings(pg_server_url: str) -> Iterator[Settings]:
    with fresh_database(pg_server_url, "steadypay_ssrf") as url:
        yield Settings(
            env=Environment.TEST, database_url=url, admin_key=ADMIN_KEY, db_pool_max_size=5
        )


@pytest.fixture(scope="module")
async def internal(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {settings.internal_key()}"}
    async with (
        serve(create_notification_app(settings, GUARDED)) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http,
    ):
        yield http


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    hooks = Receiver()
    async with serve(hooks.app()) as url:
        yield hooks, int(url.rsplit(":", 1)[1])


async def deliver_to(internal: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """Register ``url`` for a new user, post an event for them; the delivery, once settled."""
    user = str(uuid.uuid4())
    r = await internal.post("/internal/webhook_endpoints", json={"user_id": user, "url": url})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    event = {
        "id": str(uuid.uuid4()),
        "type": "transfer.completed",
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "user_ids": [user],
        "data": {},
    }
    r = await internal.post("/events", json=event, headers={"Idempotency-Key": event["id"]})
    assert r.status_code == 202, r.text
    for _ in range(100):
        r = await internal.get(f"/internal/webhook_endpoints/{endpoint}/deliveries")
        [delivery] = r.json()["data"]
        if delivery["status"] != "pending":
            await asyncio.sleep(0.3)  # several poll intervals: a retry would show
            r = await internal.get(f"/internal/webhook_endpoints/{endpoint}/deliveries")
            settled: dict[str, Any] = r.json()["data"][0]
            return settled
        await asyncio.sleep(0.05)
    raise AssertionError(f"the delivery to {url} never settled: {delivery}")


async def test_a_loopback_ip_literal_is_refused_at_delivery(
    internal: httpx.AsyncClient, receiver: tuple[Receiver, int]
) -> None:
    hooks, port = receiver
    before = refused_total("loopback")
    delivery = await deliver_to(internal, f"http://127.0.0.1:{port}/hooks/literal")
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)  # not retried
    assert delivery["last_status_code"] is None
    assert delivery["last_error"] == ("refused by the SSRF guard: 127.0.0.1, a loopback address")
    assert "/hooks/literal" not in [path for path, _ in hooks.requests]
    assert refused_total("loopback") == before + 1


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    internal: httpx.AsyncClient, receiver: tuple[Receiver, int]
) -> None:
    """The case no registration-time check can catch: the name is checked when the event is
    sent, by what it resolves to then."""
    hooks, port = receiver
    delivery = await deliver_to(internal, f"http://localhost:{port}/hooks/by-name")
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["last_error"].startswith("refused by the SSRF guard: localhost resolves to ")
    assert delivery["last_error"].endswith("a loopback address")
    assert "/hooks/by-name" not in [path for path, _ in hooks.requests]


# --- the guard's transport ------------------------------------------------------------------


class Resolver:
    """A DNS the test scripts: name -> addresses; counts the lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[host]


def guarded_client(
    resolver: Resolver, allowed: tuple[str, ...], ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    transport = PinnedTransport(
        AddressPolicy.of(allowed), max_connections=4, resolver=resolver, ssl_context=ssl_context
    )
    return httpx.AsyncClient(transport=transport, timeout=5)


async def test_the_connection_goes_to_the_checked_address_and_keeps_the_name(
    receiver: tuple[Receiver, int],
) -> None:
    hooks, port = receiver
    dns = Resolver({"hooks.example.test": ["127.0.0.1"]})
    async with guarded_client(dns, ("127.0.0.1/32",)) as http:
        for n in range(3):
            r = await http.post(f"http://hooks.example.test:{port}/hooks/pinned-{n}")
            assert r.status_code == 200
    assert ("/hooks/pinned-0", f"hooks.example.test:{port}") in hooks.requests
    assert dns.lookups == ["hooks.example.test"]  # one connection, one lookup, kept alive


async def test_a_name_with_any_internal_address_is_refused_before_connecting(
    receiver: tuple[Receiver, int],
) -> None:
    hooks, port = receiver
    dns = Resolver({"mixed.example.test": ["127.0.0.1", "10.1.2.3"]})
    async with guarded_client(dns, ("127.0.0.1/32",)) as http:
        with pytest.raises(DeliveryRefused) as refused:
            await http.post(f"http://mixed.example.test:{port}/hooks/mixed")
    assert (refused.value.host, str(refused.value.address), refused.value.reason) == (
        "mixed.example.test",
        "10.1.2.3",
        "private",
    )
    assert "/hooks/mixed" not in [path for path, _ in hooks.requests]


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
async def test_metadata_addresses_are_refused_even_when_their_network_is_allowed(
    address: str,
) -> None:
    dns = Resolver({"metadata.example.test": [address]})
    before = refused_total("metadata")
    async with guarded_client(dns, ("0.0.0.0/0", "::/0")) as http:
        with pytest.raises(DeliveryRefused) as refused:
            await http.post("http://metadata.example.test/latest/meta-data/")
    assert refused.value.reason == "metadata"
    assert refused_total("metadata") == before + 1


# --- TLS: SNI and certificate verification use the name, not the pinned address ---------------


def certificate(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for ``name``: (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "steadypay test CA")])
    ca = build("steadypay test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = build(name, leaf_key, ca_name, ca_key, ca=False)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@asynccontextmanager
async def serve_tls(app: Starlette, cert: Path, key: Path) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        ssl_certfile=str(cert), ssl_keyfile=str(key),
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def test_tls_verifies_the_name_while_connecting_to_the_pinned_address(
    tmp_path: Path,
) -> None:
    ca, cert, key = certificate(tmp_path, "hooks.example.test")
    trusting = ssl.create_default_context(cafile=str(ca))
    hooks = Receiver()
    dns = Resolver({"hooks.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    async with (
        serve_tls(hooks.app(), cert, key) as port,
        guarded_client(dns, ("127.0.0.1/32",), trusting) as http,
    ):
        r = await http.post(f"https://hooks.example.test:{port}/hooks/tls")
        assert r.status_code == 200
        # Same address, another name: the certificate is not for it, so no delivery.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post(f"https://other.example.test:{port}/hooks/wrong-name")
    assert hooks.requests == [("/hooks/tls", f"hooks.example.test:{port}")]

"""The SSRF guard of webhook deliveries: resolve at delivery time, refuse internal addresses,
and connect to exactly the address that was checked.

A webhook URL is the user's, and so is the DNS name in it: checking the name when the endpoint
is registered proves nothing about where it points when the event is sent. So every new
connection of the delivery client resolves the host itself (``getaddrinfo`` on the event loop's
executor), judges every address it resolves to with :class:`~steadypay.notifications.urls.
AddressPolicy` (one refused address refuses the delivery: a name that also points inside is not
a receiver we send to), and hands the *address*, not the name, to the socket layer. There is no
second lookup for a rebinding DNS server to answer differently.

How it is wired into httpx: httpx has no resolver hook, but its engine, httpcore, takes a
network backend, the object whose ``connect_tcp(host, port)`` opens the sockets.
:class:`GuardedBackend` is one, wrapping httpcore's own; :class:`PinnedTransport` is an httpx
transport over an ``httpcore.AsyncConnectionPool`` built with it (public APIs of both
libraries only). Everything above the socket still sees the name: the pool keys connections by
it (two names on one address never share a connection), the ``Host`` header is the URL's, and
TLS sends the name as SNI and verifies the certificate against it. (Rewriting the URL to the
address instead would do none of that correctly.) Environment proxies are not used: a proxy
would resolve the name itself.

A refused delivery raises :class:`DeliveryRefused` (not an httpx error: the worker must tell it
from a receiver that is down) and is counted in ``steadypay_webhook_deliveries_refused_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator

import httpcore
import httpx
from prometheus_client import Counter

from steadypay.notifications.urls import REFUSALS, AddressPolicy, IPAddress

DELIVERIES_REFUSED = Counter(
    "steadypay_webhook_deliveries_refused_total",
    "Webhook deliveries refused by the SSRF guard, by why: the endpoint's host resolved to a "
    "loopback, private, link-local, metadata... address not in STEADYPAY_WEBHOOK_ALLOWED_NETWORKS",
    ["reason"],
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> the addresses it resolves to now."""


class DeliveryRefused(Exception):
    """The delivery's host resolves to an address deliveries may not reach."""

    def __init__(self, host: str, address: IPAddress, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        target = str(address) if host == str(address) else f"{host} resolves to {address}"
        super().__init__(f"refused by the SSRF guard: {target}, {REFUSALS[reason]}")


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` has now (the system resolver, off the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but ``connect_tcp`` resolves and checks first, then connects
    to the checked addresses in turn (the first that accepts)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to; DeliveryRefused if any of them is refused."""
        found = await self._resolved(host, port)
        for address in found:
            reason = self._policy.refusal(address)
            if reason is not None:
                DELIVERIES_REFUSED.labels(reason).inc()
                raise DeliveryRefused(host, address, reason)
        return found

    async def _resolved(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]  # an IP literal: nothing to resolve
        except ValueError:
            pass
        try:
            answers = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror included: maybe transient, retried later
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        found = list(dict.fromkeys(ipaddress.ip_address(a) for a in answers))
        if not found:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return found

    # httpcore's interface: ``timeout`` is its connect timeout, passed on.
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in await self.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections are opened by a :class:`GuardedBackend`."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_connections: int,
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry_s: float = 5.0,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry_s,
            network_backend=GuardedBackend(policy, resolver=resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, AsyncIterable)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            answer = await self._pool.handle_async_request(core)
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_ResponseStream(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _httpx_errors():
                await close()


# httpcore's errors as httpx's, most specific first (as httpx's own transport maps them).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise

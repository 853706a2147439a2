"""A TCP fault proxy in the manner of Toxiproxy, controlled from code.

Put it between steadypay and PostgreSQL, Redis or a dependency, point the client at
``proxy.host:proxy.port``, and add *toxics* to the live proxy: they apply to connections already
open as well as new ones, chunk by chunk.

- :class:`Latency` delays each chunk by ``latency_ms`` ± ``jitter_ms`` (order is kept);
- :class:`Bandwidth` limits throughput to ``rate_kib_s``;
- :class:`Timeout` is a black hole: data stops flowing; with ``timeout_ms`` > 0 the connection is
  closed after that long, with 0 it hangs until the toxic is removed;
- :class:`ResetPeer` resets connections (TCP RST) after ``timeout_ms``;
- :meth:`FaultProxy.down` closes every connection and refuses new ones until :meth:`up`.

Each toxic has a ``direction`` (``upstream`` = client→server, ``downstream`` = server→client,
or ``both``) and a ``toxicity`` (the share of connections it affects, drawn from a seeded random
generator so a run can be replayed).

Why our own: Toxiproxy is a Go binary that is not installable from the package registries this
project may use; the toxics here are the subset steadypay's experiments need, with the same
meaning as Toxiproxy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

Direction = Literal["upstream", "downstream", "both"]
CHUNK = 32 * 1024


@dataclass(frozen=True, slots=True)
class Latency:
    latency_ms: float
    jitter_ms: float = 0.0
    direction: Direction = "downstream"
    toxicity: float = 1.0


@dataclass(frozen=True, slots=True)
class Bandwidth:
    rate_kib_s: float
    direction: Direction = "downstream"
    toxicity: float = 1.0


@dataclass(frozen=True, slots=True)
class Timeout:
    timeout_ms: float = 0.0
    direction: Direction = "both"
    toxicity: float = 1.0


@dataclass(frozen=True, slots=True)
class ResetPeer:
    timeout_ms: float = 0.0
    direction: Direction = "both"
    toxicity: float = 1.0


Toxic = Latency | Bandwidth | Timeout | ResetPeer


def _applies(toxic: Toxic, direction: Literal["upstream", "downstream"]) -> bool:
    return toxic.direction in ("both", direction)


@dataclass(eq=False, slots=True)
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    affected: dict[str, bool] = field(default_factory=dict)
    """toxic name → whether this connection drew it (toxicity), decided once per connection"""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self, *, reset: bool) -> None:
        for writer in (self.client, self.server):
            if reset:
                _set_linger_zero(writer)
            transport = writer.transport
            if reset:
                transport.abort()
            else:
                transport.close()


def _set_linger_zero(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    """``async with FaultProxy(upstream_host, upstream_port) as proxy:`` — listens on
    ``proxy.host:proxy.port`` (a free loopback port unless ``listen_port`` is given)."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = listen_host
        self.port = listen_port
        self._random = random.Random(seed)  # noqa: S311 -- replayable draws, not security
        self._connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._toxics: dict[str, Toxic] = {}
        self._changed = asyncio.Event()
        self.accepted = 0
        """connections accepted since start (a test can see its client really went through)"""

    # --- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.down()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def down(self) -> None:
        """Close every connection and refuse new ones (the port stops listening)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_connections(reset=False)

    async def up(self) -> None:
        """Listen again, on the same port."""
        if self._server is None:
            await self.start()

    async def drop_connections(self, *, reset: bool = True) -> None:
        """Close (or reset) every open connection; the proxy keeps accepting new ones."""
        connections = list(self._connections)
        for connection in connections:
            connection.abort(reset=reset)
        for connection in connections:
            for task in connection.tasks:
                task.cancel()
            for task in connection.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._connections.difference_update(connections)

    # --- toxics -------------------------------------------------------------------------------
    def add(self, name: str, toxic: Toxic) -> None:
        """Add (or replace) a toxic; it applies to open connections at once."""
        if not 0.0 <= toxic.toxicity <= 1.0:
            raise ValueError("toxicity must be between 0 and 1")
        self._toxics[name] = toxic
        for connection in self._connections:
            connection.affected.pop(name, None)
            if isinstance(toxic, ResetPeer) and self._drawn(connection, name, toxic):
                connection.tasks.append(asyncio.create_task(self._reset_later(connection, toxic)))
        self._notify()

    def remove(self, name: str) -> None:
        self._toxics.pop(name, None)
        self._notify()

    def clear(self) -> None:
        self._toxics.clear()
        self._notify()

    @property
    def toxics(self) -> dict[str, Toxic]:
        return dict(self._toxics)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _drawn(self, connection: _Connection, name: str, toxic: Toxic) -> bool:
        if name not in connection.affected:
            connection.affected[name] = self._random.random() < toxic.toxicity
        return connection.affected[name]

    def _active(
        self, connection: _Connection, direction: Literal["upstream", "downstream"]
    ) -> list[Toxic]:
        return [
            toxic
            for name, toxic in self._toxics.items()
            if _applies(toxic, direction) and self._drawn(connection, name, toxic)
        ]

    # --- plumbing -----------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self._connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            log.info("fault_proxy_upstream_unreachable", upstream=self.upstream, error=str(exc))
            writer.transport.abort()
            return
        connection = _Connection(writer, server_writer)
        self._connections.add(connection)
        for name, toxic in self._toxics.items():
            if isinstance(toxic, ResetPeer) and self._drawn(connection, name, toxic):
                connection.tasks.append(asyncio.create_task(self._reset_later(connection, toxic)))
        connection.tasks += [
            asyncio.create_task(self._pipe(connection, reader, server_writer, "upstream")),
            asyncio.create_task(self._pipe(connection, server_reader, writer, "downstream")),
        ]

    async def _reset_later(self, connection: _Connection, toxic: ResetPeer) -> None:
        await asyncio.sleep(toxic.timeout_ms / 1000)
        connection.abort(reset=True)
        self._connections.discard(connection)

    async def _pipe(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Literal["upstream", "downstream"],
    ) -> None:
        try:
            while True:
                await self._wait_while_black_hole(connection, direction)
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._wait_while_black_hole(connection, direction)
                for toxic in self._active(connection, direction):
                    if isinstance(toxic, Latency):
                        jitter = self._random.uniform(-toxic.jitter_ms, toxic.jitter_ms)
                        await asyncio.sleep(max(0.0, toxic.latency_ms + jitter) / 1000)
                    elif isinstance(toxic, Bandwidth):
                        await asyncio.sleep(len(data) / (toxic.rate_kib_s * 1024))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # one side finished: finish the other, as a real TCP path would
            connection.abort(reset=False)
            self._connections.discard(connection)

    async def _wait_while_black_hole(
        self, connection: _Connection, direction: Literal["upstream", "downstream"]
    ) -> None:
        """While a Timeout toxic applies, nothing flows; with timeout_ms it then closes."""
        while True:
            holes = [t for t in self._active(connection, direction) if isinstance(t, Timeout)]
            if not holes:
                return
            changed = self._changed
            limit = min((t.timeout_ms for t in holes if t.timeout_ms > 0), default=None)
            try:
                await asyncio.wait_for(changed.wait(), None if limit is None else limit / 1000)
            except TimeoutError:
                connection.abort(reset=False)
                raise ConnectionError("fault proxy: timeout toxic closed the connection") from None

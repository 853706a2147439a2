"""The TCP fault proxy's toxics, against a local echo server and the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from steadypay.chaos.proxy import Bandwidth, FaultProxy, Latency, ResetPeer, Timeout


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def round_trip(port: int, payload: bytes = b"ping") -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
        return data, time.perf_counter() - started
    finally:
        writer.close()


async def test_latency_delays_each_round_trip_and_removing_it_restores_speed(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo, seed=1) as proxy:
        data, fast = await round_trip(proxy.port)
        assert data == b"ping"
        proxy.add("slow", Latency(latency_ms=150, direction="both"))
        _, slow = await round_trip(proxy.port)
        proxy.remove("slow")
        _, fast_again = await round_trip(proxy.port)
    assert slow >= 0.29  # 150 ms each way
    assert fast < 0.1
    assert fast_again < 0.1


async def test_bandwidth_limits_throughput(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        proxy.add("thin", Bandwidth(rate_kib_s=256, direction="downstream"))
        _, elapsed = await round_trip(proxy.port, b"x" * 128 * 1024)
    assert elapsed >= 0.45  # 128 KiB at 256 KiB/s


async def test_reset_peer_and_down_break_connections_and_up_restores(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

        async def echo_hello() -> bytes:
            writer.write(b"hello")
            await writer.drain()
            return await asyncio.wait_for(reader.readexactly(5), 2)

        assert await echo_hello() == b"hello"
        proxy.add("rst", ResetPeer(timeout_ms=0))
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await echo_hello()
        writer.close()
        proxy.remove("rst")
        assert (await round_trip(proxy.port))[0] == b"ping"

        await proxy.down()
        with pytest.raises(ConnectionRefusedError):
            await round_trip(proxy.port)
        await proxy.up()
        assert (await round_trip(proxy.port))[0] == b"ping"


async def test_a_black_hole_hangs_until_removed_or_closes_after_its_timeout(echo: int) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        proxy.add("hole", Timeout(timeout_ms=0))
        task = asyncio.create_task(round_trip(proxy.port))
        await asyncio.sleep(0.3)
        assert not task.done()  # nothing flows
        proxy.remove("hole")
        assert (await asyncio.wait_for(task, 2))[0] == b"ping"

        proxy.add("hole", Timeout(timeout_ms=200))
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await round_trip(proxy.port)


async def test_toxicity_is_a_seeded_share_of_connections(echo: int) -> None:
    async def pattern(seed: int) -> list[bool]:
        async with FaultProxy("127.0.0.1", echo, seed=seed) as proxy:
            proxy.add("slow", Latency(latency_ms=60, direction="both", toxicity=0.5))
            return [(await round_trip(proxy.port))[1] >= 0.11 for _ in range(10)]

    first = await pattern(7)
    assert 0 < sum(first) < 10  # a share of the connections, not all or none
    assert await pattern(7) == first  # the same seed replays the same draws


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_postgresql_through_the_proxy_slow_then_reset(database_url: str) -> None:
    parts = urlsplit(database_url)
    assert parts.hostname is not None
    assert parts.port is not None
    async with FaultProxy(parts.hostname, parts.port) as proxy:
        conn = await asyncpg.connect(through(database_url, proxy.port), timeout=5)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            proxy.add("slow", Latency(latency_ms=100, direction="downstream"))
            started = time.perf_counter()
            assert await conn.fetchval("SELECT 2") == 2
            assert time.perf_counter() - started >= 0.09
            proxy.add("rst", ResetPeer())
            with pytest.raises((ConnectionError, asyncpg.PostgresConnectionError, OSError)):
                await asyncio.wait_for(conn.fetchval("SELECT 3"), 5)
        finally:
            conn.terminate()
        assert proxy.accepted == 1

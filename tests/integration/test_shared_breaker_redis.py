"""The breaker state shared through a real Redis (a private ``redis-server`` per session).

- The transition rules run against both stores, so ``RedisStore``'s Lua and ``LocalStore``
  provably agree; a seeded random walk compares them call by call.
- Two worker processes: one trips the circuit against an always-503 server, the other's very
  first call is then rejected without reaching the server.
- Redis down, hung, or back: calls behave as with the local store, one fallback report per
  episode, no redis exception escapes, and the shared state is used again after the cooldown.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, cast

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from steadypay.errors import DependencyFailure, SteadypayError
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.clock import SYSTEM_CLOCK, SystemClock
from steadypay.resilience.pipeline import Attempt, Pipeline, PipelineConfig
from steadypay.resilience.redis_store import KEY_PREFIX, RedisStore, redis_client
from steadypay.resilience.store import (
    Admission,
    BreakerConfig,
    BreakerStore,
    LocalStore,
    Rejection,
    Snapshot,
    State,
)
from tests.redis_server import RedisServer, free_port, redis_url_fixture, running_redis

ROOT = Path(__file__).resolve().parents[2]

redis_url = redis_url_fixture()

# Generous for a loaded test machine: these tests must use the shared state, not fall back
# (every Redis-backed store asserts it never fell back). The 50 ms default is tested below.
TEST_TIMEOUT_S = 1.0

# Short real periods: OPEN lasts 0.3 s, a failed trial re-opens it for min(0.75, 0.3 * 3).
CONFIG = BreakerConfig(
    reset_timeout_s=0.3,
    reset_backoff_multiplier=3.0,
    max_reset_timeout_s=0.75,
    half_open_max_calls=2,
    half_open_timeout_s=0.6,
)
PAST_OPEN_S = 0.4


class RecordingEvents:
    def __init__(self) -> None:
        self.fallbacks: list[tuple[str, str]] = []
        self.transitions: list[tuple[State, State]] = []
        self.outcomes: list[str] = []

    def transition(self, dependency: str, old: State, new: State, reason: str) -> None:
        self.transitions.append((old, new))

    def call(self, dependency: str, outcome: str, duration_s: float | None = None) -> None:
        self.outcomes.append(outcome)

    def budget(self, dependency: str, tokens: float) -> None:
        pass

    def store_fallback(self, dependency: str, reason: str) -> None:
        self.fallbacks.append((dependency, reason))


@pytest.fixture(scope="session")
async def redis_conn(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url, timeout_s=TEST_TIMEOUT_S)
    try:
        yield client
    finally:
        await client.aclose()


def unique_dependency() -> str:
    return f"dep-{uuid.uuid4().hex[:12]}"


StoreFactory = Callable[..., BreakerStore]


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Builds the store under test: a LocalStore on the system clock, or a RedisStore on the
    session's Redis (which must never fall back: the teardown checks)."""
    conn: Redis | None = request.getfixturevalue("redis_conn") if request.param == "redis" else None
    events: list[RecordingEvents] = []

    def local(config: BreakerConfig = CONFIG) -> BreakerStore:
        return LocalStore(config, SystemClock())

    def shared(config: BreakerConfig = CONFIG) -> BreakerStore:
        assert conn is not None
        recorder = RecordingEvents()
        events.append(recorder)
        return RedisStore(
            conn,
            unique_dependency(),
            config,
            fallback=LocalStore(config, SYSTEM_CLOCK),
            events=recorder,
        )

    yield local if request.param == "local" else shared
    fell_back = [f for recorder in events for f in recorder.fallbacks]
    assert not fell_back, f"the Redis store fell back to local state: {fell_back}"


def rejected(decision: Admission | Rejection, state: State, generation: int) -> float | None:
    assert isinstance(decision, Rejection), decision
    assert (decision.state, decision.generation) == (state, generation)
    return decision.retry_after_s


# --- the transition table, on both stores ----------------------------------------------------


async def test_closed_admits_and_a_trip_in_the_current_generation_opens(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    assert await store.snapshot() == Snapshot(State.CLOSED, 0, 0, None)
    assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
    assert await store.trip(0) is State.OPEN
    retry_after = rejected(await store.admit(), State.OPEN, 1)
    assert retry_after is not None
    assert 0.1 < retry_after <= 0.3 + 1e-6
    snapshot = await store.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.trips) == (State.OPEN, 1, 1)


async def test_a_stale_generation_cannot_trip(make_store: StoreFactory) -> None:
    store = make_store()
    assert await store.trip(0) is State.OPEN  # generation 1
    assert await store.force(State.CLOSED) is State.CLOSED  # generation 2
    assert await store.trip(0) is State.CLOSED  # a slow call admitted before the first trip
    assert await store.trip(1) is State.CLOSED
    assert await store.trip(3) is State.CLOSED  # a generation that never was
    assert await store.admit() == Admission(State.CLOSED, 2, trial=False)
    assert await store.trip(2) is State.OPEN  # generation 3
    assert await store.trip(3) is State.OPEN  # already open: nothing moves
    snapshot = await store.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.trips) == (State.OPEN, 3, 1)


async def test_after_the_open_period_trials_are_limited_and_successes_close(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.trip(0)
    await asyncio.sleep(PAST_OPEN_S)
    assert await store.admit() == Admission(State.HALF_OPEN, 2, trial=True)
    assert await store.admit() == Admission(State.HALF_OPEN, 2, trial=True)
    retry_after = rejected(await store.admit(), State.HALF_OPEN, 2)  # both trials in flight
    assert retry_after is not None
    assert 0.3 < retry_after <= 0.6 + 1e-6  # until the half-open timeout
    assert await store.trial_result(2, success=True) is State.HALF_OPEN
    assert await store.trial_result(1, success=True) is State.HALF_OPEN  # stale: not counted
    assert await store.trial_result(2, success=True) is State.CLOSED
    assert await store.snapshot() == Snapshot(State.CLOSED, 3, 0, None)
    assert await store.admit() == Admission(State.CLOSED, 3, trial=False)


async def test_a_failed_trial_reopens_for_longer_up_to_the_cap(make_store: StoreFactory) -> None:
    store = make_store()
    await store.trip(0)
    await asyncio.sleep(PAST_OPEN_S)
    assert await store.admit() == Admission(State.HALF_OPEN, 2, trial=True)
    assert await store.admit() == Admission(State.HALF_OPEN, 2, trial=True)
    assert await store.trial_result(2, success=False) is State.OPEN
    assert await store.trial_result(2, success=True) is State.OPEN  # the other trial: too late
    snapshot = await store.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.trips) == (State.OPEN, 3, 2)
    assert snapshot.retry_after_s is not None
    assert 0.6 < snapshot.retry_after_s <= 0.75 + 1e-6  # 0.3 * 3 = 0.9, capped at 0.75
    await asyncio.sleep(PAST_OPEN_S)
    assert isinstance(await store.admit(), Rejection), "the longer period ended too early"


async def test_a_hung_trial_reopens_at_the_half_open_timeout(make_store: StoreFactory) -> None:
    store = make_store(
        BreakerConfig(reset_timeout_s=0.3, half_open_timeout_s=0.3, max_reset_timeout_s=10)
    )
    await store.trip(0)
    await asyncio.sleep(PAST_OPEN_S)
    assert await store.admit() == Admission(State.HALF_OPEN, 2, trial=True)  # then it hangs
    await asyncio.sleep(PAST_OPEN_S)
    snapshot = await store.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.trips) == (State.OPEN, 3, 2)
    assert snapshot.retry_after_s is not None
    assert 0.5 < snapshot.retry_after_s <= 0.6 + 1e-6  # the second open period: 0.3 * 2
    assert await store.trial_result(2, success=True) is State.OPEN  # the hung trial, at last


async def test_operators_force_open_disable_and_reset(make_store: StoreFactory) -> None:
    store = make_store()
    await store.trip(0)  # generation 1, trips 1
    assert await store.force(State.FORCED_OPEN) is State.FORCED_OPEN
    assert rejected(await store.admit(), State.FORCED_OPEN, 2) is None
    assert await store.trip(2) is State.FORCED_OPEN
    await asyncio.sleep(PAST_OPEN_S)  # no period ends a forced state
    assert await store.snapshot() == Snapshot(State.FORCED_OPEN, 2, 1, None)

    assert await store.force(State.DISABLED) is State.DISABLED
    assert await store.admit() == Admission(State.DISABLED, 3, trial=False)
    assert await store.trip(3) is State.DISABLED
    assert await store.trial_result(3, success=False) is State.DISABLED

    assert await store.force(State.CLOSED) is State.CLOSED
    assert await store.snapshot() == Snapshot(State.CLOSED, 4, 0, None)
    for state in (State.OPEN, State.HALF_OPEN):
        with pytest.raises(ValueError, match="force open, disable, or reset"):
            await store.force(state)
    assert (await store.snapshot()).generation == 4


# --- Redis specifics -------------------------------------------------------------------------


def shared_store(
    client: Redis,
    dependency: str,
    config: BreakerConfig = CONFIG,
    events: RecordingEvents | None = None,
) -> RedisStore:
    return RedisStore(
        client,
        dependency,
        config,
        fallback=LocalStore(config, SYSTEM_CLOCK),
        events=events or RecordingEvents(),
    )


async def test_redis_and_local_agree_call_by_call_on_a_random_walk(redis_conn: Redis) -> None:
    # Open periods of 0 s: OPEN turns HALF_OPEN at the next look, so no sleeping is needed to
    # visit every state; the half-open timeout (60 s) never passes.
    config = BreakerConfig(reset_timeout_s=0.0, half_open_max_calls=3, half_open_timeout_s=60)
    local = LocalStore(config, SystemClock())
    events = RecordingEvents()
    shared = shared_store(redis_conn, unique_dependency(), config, events)
    rng = random.Random(20240611)
    generation = 0
    seen: set[State] = set()
    for step in range(400):
        op = rng.choice(["admit", "admit", "trip", "trial", "trial", "force", "snapshot"])
        guess = generation - rng.choice([0, 0, 0, 1])  # now and then a stale generation
        success = rng.random() < 0.8
        forced = rng.choice([State.CLOSED] * 4 + [State.FORCED_OPEN, State.DISABLED])

        async def run(
            store: BreakerStore,
            op: str = op,
            guess: int = guess,
            success: bool = success,
            forced: State = forced,
        ) -> object:
            if op == "admit":
                return await store.admit()
            if op == "trip":
                return await store.trip(guess)
            if op == "trial":
                return await store.trial_result(guess, success)
            if op == "force":
                return await store.force(forced)
            return await store.snapshot()

        expected, got = await run(local), await run(shared)
        assert _comparable(got) == _comparable(expected), f"step {step}: {op}({guess})"
        if isinstance(expected, State):
            seen.add(expected)
        elif isinstance(expected, Admission | Rejection | Snapshot):
            generation = expected.generation
            seen.add(expected.state)
    assert seen == set(State), "the walk did not visit every state"
    assert not events.fallbacks
    stored = await cast(
        "Awaitable[bytes | None]", redis_conn.hget(KEY_PREFIX + shared.dependency, "generation")
    )
    assert stored is not None
    assert int(stored) == (await local.snapshot()).generation  # it really was Redis answering


def _comparable(result: object) -> object:
    """A result with the time left reduced to whether there is one (the stores' clocks differ)."""
    if isinstance(result, Rejection | Snapshot):
        return (type(result), result.state, result.generation, result.retry_after_s is None)
    return result


async def test_state_is_one_hash_per_dependency_with_a_ttl(redis_conn: Redis) -> None:
    store = shared_store(redis_conn, unique_dependency())
    key = KEY_PREFIX + store.dependency
    assert key == f"steadypay:breaker:{store.dependency}"
    assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
    await store.snapshot()
    assert await redis_conn.exists(key) == 0, "reading a closed breaker must not create its key"

    seconds, micros = await redis_conn.time()
    before_us = seconds * 1_000_000 + micros
    assert await store.trip(0) is State.OPEN
    stored = await cast("Awaitable[dict[bytes, bytes]]", redis_conn.hgetall(key))
    fields = {k.decode(): v.decode() for k, v in stored.items()}
    assert set(fields) == {
        "state",
        "generation",
        "trips",
        "open_until",
        "half_open_since",
        "admitted",
        "succeeded",
    }
    assert (fields["state"], fields["generation"], fields["trips"]) == ("2", "1", "1")
    # open_until is Redis server time in microseconds: now + 0.3 s.
    assert 250_000 <= int(fields["open_until"]) - before_us <= 350_000
    day_ms = 24 * 3600 * 1000
    assert day_ms - 60_000 < await redis_conn.pttl(key) <= day_ms

    await redis_conn.pexpire(key, 1000)  # less than half the TTL left: the next call refreshes
    await store.snapshot()
    assert await redis_conn.pttl(key) > day_ms - 60_000
    await redis_conn.delete(key)  # an expired key is a closed breaker at generation 0
    assert await store.snapshot() == Snapshot(State.CLOSED, 0, 0, None)


async def test_concurrent_workers_move_each_generation_once(redis_url: str) -> None:
    dependency = unique_dependency()
    clients = [redis_client(redis_url, timeout_s=TEST_TIMEOUT_S) for _ in range(4)]
    try:
        events = [RecordingEvents() for _ in clients]
        stores = [
            shared_store(c, dependency, CONFIG, e) for c, e in zip(clients, events, strict=True)
        ]
        # Forty workers see the same failure streak under generation 0: one trip happens.
        states = await asyncio.gather(*(stores[i % 4].trip(0) for i in range(40)))
        assert set(states) == {State.OPEN}
        snapshot = await stores[0].snapshot()
        assert (snapshot.generation, snapshot.trips) == (1, 1)
        await asyncio.sleep(PAST_OPEN_S)
        # Forty calls race into HALF_OPEN: exactly half_open_max_calls become trials.
        decisions = await asyncio.gather(*(stores[i % 4].admit() for i in range(40)))
        trials = [d for d in decisions if isinstance(d, Admission)]
        assert len(trials) == CONFIG.half_open_max_calls
        assert {d.generation for d in decisions} == {2}
        assert not [f for e in events for f in e.fallbacks]
    finally:
        for client in clients:
            await client.aclose()


# --- two worker processes ------------------------------------------------------------------

WORKER_CONFIG = PipelineConfig(
    total_timeout_s=3.0,
    attempt_timeout_s=2.0,
    max_attempts=1,
    breaker=BreakerConfig(failure_threshold=3, minimum_calls=1000, reset_timeout_s=30.0),
)
REPLY_PREFIX = "@@ "


def worker_main() -> None:
    """An API worker for the two-process test, run as
    ``python -c '...worker_main()' REDIS_URL BASE_URL DEPENDENCY``: builds a pipeline whose
    breaker state is in Redis, then answers ``call`` / ``quit`` lines on stdin with one
    ``@@ {json}`` line each on stdout (other output, such as logs, is ignored)."""
    redis_url, base_url, dependency = sys.argv[1:4]

    def reply(message: dict[str, Any]) -> None:
        print(REPLY_PREFIX + json.dumps(message), flush=True)

    with asyncio.Runner() as runner:
        events = RecordingEvents()
        client = redis_client(redis_url, timeout_s=TEST_TIMEOUT_S)
        store = RedisStore(
            client,
            dependency,
            WORKER_CONFIG.breaker,
            fallback=LocalStore(WORKER_CONFIG.breaker, SYSTEM_CLOCK),
            events=events,
        )
        pipeline = Pipeline(dependency, WORKER_CONFIG, store=store, events=events)
        http = ReliableServiceClient(base_url, pipeline)

        async def one_call() -> dict[str, Any]:
            try:
                response = await http.get("/charge")
            except SteadypayError as exc:
                return {"outcome": exc.code, "retry_after_s": getattr(exc, "retry_after_s", None)}
            return {"outcome": f"http {response.status_code}"}

        reply({"ready": True})
        for line in sys.stdin:
            if line.strip() != "call":
                break
            result = runner.run(one_call())
            state = runner.run(pipeline.breaker.snapshot()).state
            reply({**result, "state": state.name, "fallbacks": events.fallbacks})
        runner.run(http.aclose())
        runner.run(client.aclose())


class Worker:
    """A ``worker_main`` process driven over stdin/stdout."""

    def __init__(self, redis_url: str, base_url: str, dependency: str) -> None:
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        code = f"from {__name__} import worker_main; worker_main()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, redis_url, base_url, dependency],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": pythonpath},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(REPLY_PREFIX):
                message: dict[str, Any] = json.loads(line[len(REPLY_PREFIX) :])
                return message
        self._stderr.seek(0)
        raise AssertionError(f"the worker exited: {self._stderr.read()[-3000:]}")

    def call(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("call\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        try:
            if self.process.poll() is None and self.process.stdin is not None:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            self._stderr.close()


class CountingServer(ThreadingHTTPServer):
    """A loopback HTTP server that answers 503 to everything and counts the requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Always503)
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Always503(BaseHTTPRequestHandler):
    server: CountingServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def always_503() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.timeout(60)
def test_two_worker_processes_see_the_circuit_open_together(
    redis_url: str, always_503: CountingServer
) -> None:
    admin = sync_redis.Redis.from_url(redis_url)
    admin.delete(KEY_PREFIX + "flaky")
    admin.close()
    a = Worker(redis_url, always_503.url, "flaky")
    b = Worker(redis_url, always_503.url, "flaky")
    try:
        assert a.receive() == {"ready": True}
        assert b.receive() == {"ready": True}  # both running before anything fails

        outcomes = []
        for _ in range(10):
            result = a.call()
            outcomes.append(result["outcome"])
            if result["outcome"] == "circuit_open":
                break
        assert outcomes == ["dependency_error"] * 3 + ["circuit_open"]
        assert always_503.requests == 3

        first = b.call()  # B has made no call at all until now
        assert first["outcome"] == "circuit_open"
        assert first["state"] == "OPEN"
        assert 25 < first["retry_after_s"] <= 30
        assert always_503.requests == 3, "B called the dependency despite the shared open circuit"
        assert result["fallbacks"] == first["fallbacks"] == []
    finally:
        a.close()
        b.close()


# --- Redis down, hung, or back ----------------------------------------------------------------


async def _calls_through(pipeline: Pipeline) -> list[str]:
    async def ok(_: Attempt) -> str:
        return "ok"

    async def fail(_: Attempt) -> str:
        raise DependencyFailure("503", dependency=pipeline.dependency, status_code=503)

    results = []
    for operation in [ok, fail, ok, fail, fail, fail, ok, ok]:
        try:
            results.append(await pipeline.call(operation, idempotent=False))
        except SteadypayError as exc:  # a redis exception would escape this and fail the test
            results.append(exc.code)
    return results


async def test_with_redis_down_calls_behave_as_with_the_local_store() -> None:
    config = PipelineConfig(max_attempts=1, breaker=BreakerConfig(failure_threshold=3))
    nowhere = redis_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        events = RecordingEvents()
        store = RedisStore(
            nowhere,
            "payments-gw",
            config.breaker,
            fallback=LocalStore(config.breaker, SYSTEM_CLOCK),
            events=events,
        )
        with_redis = await _calls_through(
            Pipeline("payments-gw", config, store=store, events=events)
        )
        local_events = RecordingEvents()
        with_local = await _calls_through(Pipeline("payments-gw", config, events=local_events))
    finally:
        await nowhere.aclose()

    expected = ["ok", "dependency_error", "ok"] + ["dependency_error"] * 3 + ["circuit_open"] * 2
    assert with_redis == with_local == expected
    assert events.transitions == local_events.transitions == [(State.CLOSED, State.OPEN)]
    assert len(events.fallbacks) == 1, "one report per episode, not per call"
    dependency, reason = events.fallbacks[0]
    assert dependency == "payments-gw"
    assert "ConnectionError" in reason
    assert not store.shared


async def test_a_hung_redis_is_cut_off_at_50_ms() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # swallow everything until the client goes away

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = redis_client(f"redis://127.0.0.1:{port}/0")  # the default 50 ms
    try:
        events = RecordingEvents()
        store = RedisStore(
            hung, "slow", CONFIG, fallback=LocalStore(CONFIG, SYSTEM_CLOCK), events=events
        )
        assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
        assert await store.trip(0) is State.OPEN
        assert rejected(await store.admit(), State.OPEN, 1) is not None
        assert len(events.fallbacks) == 1
        assert "Timeout" in events.fallbacks[0][1] or "50 ms" in events.fallbacks[0][1]
        assert connections, "the store never tried the hung Redis"
    finally:
        await hung.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_shared_state_is_used_again_once_redis_is_back(
    tmp_path: Path,
) -> None:
    cooldown_s = 1.5
    with running_redis(tmp_path / "redis") as server:
        ours = redis_client(server.url, timeout_s=TEST_TIMEOUT_S)
        theirs = redis_client(server.url, timeout_s=TEST_TIMEOUT_S)  # another worker
        try:
            events = RecordingEvents()
            store = RedisStore(
                ours,
                "ledger-sync",
                CONFIG,
                fallback=LocalStore(CONFIG, SYSTEM_CLOCK),
                events=events,
                cooldown_s=cooldown_s,
            )
            other = shared_store(theirs, "ledger-sync")
            assert await other.force(State.FORCED_OPEN) is State.FORCED_OPEN
            assert rejected(await store.admit(), State.FORCED_OPEN, 1) is None  # shared

            server.stop()
            fell_back_at = time.monotonic()
            # The local state answers (closed), reported once however many calls are made.
            for _ in range(5):
                assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
            assert len(events.fallbacks) == 1
            assert not store.shared

            await _restart(server)
            assert await other.force(State.FORCED_OPEN) is State.FORCED_OPEN
            assert other.shared, "the other worker could not reach the restarted Redis"
            # Still cooling down: Redis is not asked, the local state keeps answering.
            assert time.monotonic() - fell_back_at < cooldown_s, "the restart took too long"
            assert await store.admit() == Admission(State.CLOSED, 0, trial=False)

            await asyncio.sleep(fell_back_at + cooldown_s - time.monotonic() + 0.05)
            assert rejected(await store.admit(), State.FORCED_OPEN, 1) is None  # shared again
            assert store.shared
            assert len(events.fallbacks) == 1
        finally:
            await ours.aclose()
            await theirs.aclose()


async def _restart(server: RedisServer) -> None:
    await asyncio.to_thread(server.start)

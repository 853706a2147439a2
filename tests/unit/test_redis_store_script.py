"""RedisStore's fallback episodes, without a network: a client whose EVALSHA is scripted.

The Lua scripts themselves run against a real Redis in
``tests/integration/test_shared_breaker_redis.py``; here, on a fake clock, the rules around them:
any trouble means the local store answers, one ``store_fallback`` per episode, no Redis call
during the cooldown, one probe at a time after it, and no redis exception ever escapes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import ResponseError
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from steadypay.resilience.redis_store import RedisStore
from steadypay.resilience.store import (
    Admission,
    BreakerConfig,
    LocalStore,
    Rejection,
    Snapshot,
    State,
)

CONFIG = BreakerConfig(reset_timeout_s=30.0, half_open_max_calls=2)
# What the admit script answers for a shared state that is forced open at generation 7.
FORCED_OPEN_REPLY = [int(State.FORCED_OPEN), 7, 1, -1, 0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordingEvents:
    def __init__(self) -> None:
        self.fallbacks: list[tuple[str, str]] = []

    def transition(self, dependency: str, old: State, new: State, reason: str) -> None:
        pass

    def call(self, dependency: str, outcome: str, duration_s: float | None = None) -> None:
        pass

    def budget(self, dependency: str, tokens: float) -> None:
        pass

    def store_fallback(self, dependency: str, reason: str) -> None:
        self.fallbacks.append((dependency, reason))


class ScriptedRedis(Redis):
    """Never connects: every script call lands in ``evalsha``, which fails with ``error``,
    waits ``delay_s`` (real time), or answers ``reply``."""

    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=9)
        self.calls = 0
        self.error: BaseException | None = None
        self.delay_s = 0.0
        self.reply: Any = FORCED_OPEN_REPLY

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.reply


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def redis() -> ScriptedRedis:
    return ScriptedRedis()


def make_store(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock, **kwargs: Any
) -> RedisStore:
    return RedisStore(
        redis,
        "flaky",
        CONFIG,
        fallback=LocalStore(CONFIG, clock),
        events=events,
        cooldown_s=5.0,
        clock=clock,
        **kwargs,
    )


async def test_shared_state_answers_while_redis_is_fine(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    store = make_store(redis, events, clock)
    assert await store.admit() == Rejection(State.FORCED_OPEN, 7, None)
    assert await store.snapshot() == Snapshot(State.FORCED_OPEN, 7, 1, None)
    assert redis.calls == 2
    assert events.fallbacks == []
    assert store.shared


@pytest.mark.parametrize(
    "error",
    [
        RedisConnectionError("Connection refused"),
        RedisTimeoutError("Timeout reading from socket"),
        ResponseError("ERR Error running script"),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError(113, "No route to host"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_any_redis_error_means_the_local_store_answers(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock, error: BaseException
) -> None:
    redis.error = error
    store = make_store(redis, events, clock)
    # The local store is CLOSED at generation 0: it admits, where Redis would have rejected.
    assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
    assert not store.shared
    assert len(events.fallbacks) == 1
    dependency, reason = events.fallbacks[0]
    assert dependency == "flaky"
    assert type(error).__name__ in reason


@pytest.mark.parametrize(
    "reply",
    [[99, 1, 0, -1, 1], [b"open", 1, 0, -1, 1], [0, 1], None, b"OK"],
    ids=["unknown-state", "not-a-number", "short", "nil", "status"],
)
async def test_a_malformed_reply_means_the_local_store_answers(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock, reply: Any
) -> None:
    redis.reply = reply
    store = make_store(redis, events, clock)
    assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
    assert len(events.fallbacks) == 1


async def test_one_report_per_episode_and_no_redis_call_during_the_cooldown(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    redis.error = RedisConnectionError("Connection refused")
    store = make_store(redis, events, clock)
    local = LocalStore(CONFIG, FakeClock())  # the same calls on a plain LocalStore, to compare

    admission = await store.admit()
    assert admission == await local.admit()
    assert redis.calls == 1
    clock.now += 4.9
    # Everything the breaker does goes to the local store, which trips and rejects as usual.
    assert await store.trip(admission.generation) == await local.trip(admission.generation)
    rejection = await store.admit()
    assert isinstance(rejection, Rejection)
    assert (rejection.state, rejection.generation) == (State.OPEN, 1)
    assert rejection.retry_after_s == pytest.approx(30.0)
    snapshot = await store.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.trips) == (State.OPEN, 1, 1)
    assert await store.trial_result(1, success=True) is State.OPEN
    assert await store.force(State.CLOSED) is State.CLOSED
    assert redis.calls == 1, "Redis was asked during the cooldown"
    assert len(events.fallbacks) == 1

    clock.now += 0.2  # the cooldown is over: the next call probes Redis, which still fails
    assert await store.admit() == Admission(State.CLOSED, 2, trial=False)
    assert redis.calls == 2
    assert len(events.fallbacks) == 1, "a failed probe is the same episode, not a new one"
    clock.now += 4.0  # a failed probe starts the cooldown again
    await store.admit()
    assert redis.calls == 2


async def test_redis_is_used_again_after_the_cooldown_and_a_new_outage_is_a_new_episode(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    store = make_store(redis, events, clock)
    redis.error = RedisConnectionError("Connection refused")
    assert isinstance(await store.admit(), Admission)  # local
    redis.error = None  # Redis is back, but we do not know before the cooldown ends
    assert isinstance(await store.admit(), Admission)
    assert redis.calls == 1

    clock.now += 5.0
    assert await store.admit() == Rejection(State.FORCED_OPEN, 7, None)  # shared again
    assert store.shared
    assert await store.admit() == Rejection(State.FORCED_OPEN, 7, None)
    assert redis.calls == 3

    redis.error = RedisTimeoutError("Timeout reading from socket")
    assert isinstance(await store.admit(), Admission)
    assert [reason.split(":")[0] for _, reason in events.fallbacks] == [
        "ConnectionError",
        "TimeoutError",
    ]


async def test_a_slow_redis_is_cut_off_at_the_timeout(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    redis.delay_s = 5.0
    store = make_store(redis, events, clock, timeout_s=0.02)
    assert await store.admit() == Admission(State.CLOSED, 0, trial=False)
    assert events.fallbacks == [("flaky", "no answer within 20 ms")]


async def test_the_timeout_defaults_to_the_clients_socket_timeout(
    events: RecordingEvents, clock: FakeClock
) -> None:
    class SlowRedis(ScriptedRedis):
        def __init__(self) -> None:
            Redis.__init__(self, host="127.0.0.1", port=9, socket_timeout=0.03)
            self.calls, self.error, self.delay_s, self.reply = 0, None, 5.0, FORCED_OPEN_REPLY

    store = make_store(SlowRedis(), events, clock)
    await store.snapshot()
    assert events.fallbacks == [("flaky", "no answer within 30 ms")]


async def test_only_one_call_probes_after_the_cooldown(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    store = make_store(redis, events, clock, timeout_s=2.0)
    redis.error = RedisConnectionError("Connection refused")
    await store.admit()
    redis.error = None
    redis.delay_s = 0.02
    clock.now += 5.0
    answers = await asyncio.gather(*(store.admit() for _ in range(5)))
    assert redis.calls == 2, "more than one call probed Redis at once"
    # The probe answers from Redis; the four calls that did not wait for it, locally.
    assert sorted(isinstance(a, Rejection) for a in answers) == [False] * 4 + [True]
    assert store.shared


async def test_cancelling_a_call_is_not_a_redis_outage(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    redis.delay_s = 5.0
    store = make_store(redis, events, clock, timeout_s=10.0)
    task = asyncio.create_task(store.admit())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events.fallbacks == []
    assert store.shared


async def test_force_refuses_other_states_without_asking_redis(
    redis: ScriptedRedis, events: RecordingEvents, clock: FakeClock
) -> None:
    store = make_store(redis, events, clock)
    with pytest.raises(ValueError, match="force open, disable, or reset"):
        await store.force(State.OPEN)
    assert redis.calls == 0

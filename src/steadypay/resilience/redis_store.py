"""Breaker state shared by every worker process and host, in Redis.

:class:`RedisStore` implements :class:`~steadypay.resilience.store.BreakerStore` with exactly the
rules of :class:`~steadypay.resilience.store.LocalStore` (same transitions, same return values).
Each transition is one Lua script run atomically by Redis: nothing reads the state into Python,
changes it and writes it back, so two workers can never both move the same generation.

**Layout.** Dependency ``name`` lives in one hash, ``steadypay:breaker:<name>``:

- ``state``: the :class:`State` value (0 closed, 1 half-open, 2 open, 3 forced open,
  4 disabled);
- ``generation``: bumped by every transition;
- ``trips``: consecutive trips without a close in between (the backoff exponent);
- ``open_until``: when OPEN ends, Redis server time in integer microseconds since the epoch;
- ``half_open_since``: when HALF_OPEN began, same unit;
- ``admitted`` / ``succeeded``: trial calls admitted / succeeded in this HALF_OPEN period.

A missing key is CLOSED at generation 0, so the key is only created by the first transition.
Every call that finds the key refreshes its TTL (``ttl_s``, a day by default) once less than half
of it is left, so the state of a dependency nobody calls any more disappears after a day or two
— a breaker forced open and then abandoned included. The config (open period, backoff, trial
count, half-open timeout) travels as ARGV on every call: changing it needs no migration.

**Time** inside the scripts is the Redis server's (``TIME``), so workers on different hosts agree
on when an open period ends; no client clock is sent. A step of the server's wall clock shifts
open periods in progress by as much.

**When Redis is unreachable or slow** (any redis error, OSError, a malformed reply, or no answer
within ``timeout_s``), the process's own ``fallback`` store answers instead and the trouble is
reported once per episode (``events.store_fallback``). For ``cooldown_s`` after that, Redis is not
asked at all, so a dead Redis costs nothing per call. Then one call at a time probes it; when a
probe succeeds the shared state is used again and ``circuit_breaker_store_recovered`` is logged.
No redis exception ever reaches a caller: Redis cannot make a dependency call fail.

While falling back, each process counts and trips on its own state, and generations of the two
stores are unrelated: a result admitted under one store and reported to the other is ignored as
stale unless the numbers happen to match, which at worst moves a breaker one call early or late.
An operator's ``force`` during an episode applies to this process's fallback store only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from steadypay.resilience.clock import SYSTEM_CLOCK, Clock
from steadypay.resilience.events import Events
from steadypay.resilience.store import (
    Admission,
    BreakerConfig,
    BreakerStore,
    Rejection,
    Snapshot,
    State,
)

log = structlog.get_logger("steadypay.resilience")

KEY_PREFIX: Final = "steadypay:breaker:"
DEFAULT_TIMEOUT_S: Final = 0.05
DEFAULT_TTL_S: Final = 24 * 3600

FORCEABLE: Final = frozenset({State.FORCED_OPEN, State.DISABLED, State.CLOSED})

# What "Redis is in trouble" looks like from here. TimeoutError (our own deadline) and
# ConnectionRefusedError are OSErrors; ValueError/LookupError/TypeError come from a reply that
# does not parse (a foreign or corrupted value): the local state answers then too.
_TROUBLE: Final = (RedisError, OSError, ValueError, LookupError, TypeError)

# ARGV[1..6] on every call: the config and the TTL; ARGV[7..] belong to the operation.
_PRELUDE: Final = """
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME, then writes
local CLOSED, HALF_OPEN, OPEN = 0, 1, 2
local DISABLED = 4
local key = KEYS[1]
local reset_s = tonumber(ARGV[1])
local multiplier = tonumber(ARGV[2])
local max_reset_s = tonumber(ARGV[3])
local half_open_max_calls = tonumber(ARGV[4])
local half_open_timeout_us = tonumber(ARGV[5]) * 1000000
local ttl_ms = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local f = redis.call('HMGET', key, 'state', 'generation', 'trips', 'open_until',
                     'half_open_since', 'admitted', 'succeeded')
local exists = f[1] ~= false
local b = {
  state = tonumber(f[1]) or CLOSED, generation = tonumber(f[2]) or 0,
  trips = tonumber(f[3]) or 0, open_until = tonumber(f[4]) or 0,
  half_open_since = tonumber(f[5]) or 0, admitted = tonumber(f[6]) or 0,
  succeeded = tonumber(f[7]) or 0,
}
local dirty = false

local function open_duration_us(trips)
  local growth = multiplier ^ math.max(0, trips - 1)
  return math.floor(math.min(max_reset_s, reset_s * growth) * 1000000 + 0.5)
end

local function move(state)
  b.state = state
  b.generation = b.generation + 1
  dirty = true
  if state == OPEN then
    b.trips = b.trips + 1
    b.open_until = now + open_duration_us(b.trips)
  elseif state == HALF_OPEN then
    b.half_open_since = now
    b.admitted = 0
    b.succeeded = 0
  elseif state == CLOSED then
    b.trips = 0
  end
end

local function expire()
  if b.state == OPEN and now >= b.open_until then
    move(HALF_OPEN)
  elseif b.state == HALF_OPEN and now - b.half_open_since >= half_open_timeout_us then
    move(OPEN) -- a trial hung: treat it as failed
  end
end

local function retry_after_us()
  if b.state == OPEN then return math.max(0, b.open_until - now) end
  if b.state == HALF_OPEN then
    return math.max(0, b.half_open_since + half_open_timeout_us - now)
  end
  return -1 -- none: closed, disabled, or forced open until an operator says so
end

-- Save if changed, keep the TTL fresh, and answer
-- {state, generation, trips, retry_after_us (-1: none), verdict (0 no, 1 admitted, 2 trial)}.
local function finish(verdict)
  if dirty then
    redis.call('HSET', key, 'state', b.state, 'generation', b.generation, 'trips', b.trips,
               'open_until', string.format('%.0f', b.open_until),
               'half_open_since', string.format('%.0f', b.half_open_since),
               'admitted', b.admitted, 'succeeded', b.succeeded)
    redis.call('PEXPIRE', key, ttl_ms)
  elseif exists and redis.call('PTTL', key) < ttl_ms / 2 then
    redis.call('PEXPIRE', key, ttl_ms)
  end
  return {b.state, b.generation, b.trips, retry_after_us(), verdict}
end
"""

_ADMIT: Final = (
    _PRELUDE
    + """
expire()
local verdict = 0
if b.state == HALF_OPEN and b.admitted < half_open_max_calls then
  b.admitted = b.admitted + 1
  dirty = true
  verdict = 2
elseif b.state == CLOSED or b.state == DISABLED then
  verdict = 1
end
return finish(verdict)
"""
)

_TRIP: Final = (
    _PRELUDE
    + """
if b.state == CLOSED and b.generation == tonumber(ARGV[7]) then move(OPEN) end
return finish(0)
"""
)

_TRIAL_RESULT: Final = (
    _PRELUDE
    + """
expire()
if b.state == HALF_OPEN and b.generation == tonumber(ARGV[7]) then
  if ARGV[8] ~= '1' then
    move(OPEN)
  else
    b.succeeded = b.succeeded + 1
    dirty = true
    if b.succeeded >= half_open_max_calls then move(CLOSED) end
  end
end
return finish(0)
"""
)

_FORCE: Final = (
    _PRELUDE
    + """
move(tonumber(ARGV[7]))
return finish(0)
"""
)

_SNAPSHOT: Final = (
    _PRELUDE
    + """
expire()
return finish(0)
"""
)


def redis_client(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Redis:
    """A client for breaker state: short socket timeouts and a single immediate retry inside
    redis-py. The retry replaces a pooled connection that died with a restarted server (without
    it, every worker would fall back once after each Redis restart); there is no backoff, and
    the store's own timeout still bounds the whole operation. redis-py's default (retries with
    1-10 s backoff) would hold a dependency call for seconds. Connects lazily; close it with
    ``aclose()``."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )


class RedisStore:
    """The breaker state of ``dependency``, shared through Redis, with ``fallback`` (normally
    a :class:`~steadypay.resilience.store.LocalStore`) answering while Redis is in trouble.

    ``timeout_s`` bounds each operation as a whole (connecting and loading the script
    included); None takes the client's ``socket_timeout``, or 50 ms if it has none.
    """

    def __init__(
        self,
        redis: Redis,
        dependency: str,
        config: BreakerConfig,
        *,
        fallback: BreakerStore,
        events: Events,
        cooldown_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        timeout_s: float | None = None,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        if cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.dependency = dependency
        self.key = KEY_PREFIX + dependency
        self._fallback = fallback
        self._events = events
        self._cooldown_s = cooldown_s
        self._clock = clock
        if timeout_s is None:
            socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
            timeout_s = float(socket_timeout) if socket_timeout else DEFAULT_TIMEOUT_S
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._timeout_s = timeout_s
        self._config_args: tuple[str | int, ...] = (
            repr(float(config.reset_timeout_s)),
            repr(float(config.reset_backoff_multiplier)),
            repr(float(config.max_reset_timeout_s)),
            config.half_open_max_calls,
            repr(float(config.half_open_timeout_s)),
            max(1, round(ttl_s * 1000)),
        )
        # register_script does no I/O: it hashes the text. The Script runs EVALSHA and loads
        # the text on NOSCRIPT (a fresh or restarted Redis).
        self._admit = redis.register_script(_ADMIT)
        self._trip = redis.register_script(_TRIP)
        self._trial_result = redis.register_script(_TRIAL_RESULT)
        self._force = redis.register_script(_FORCE)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._down_since: float | None = None  # monotonic start of the current episode
        self._retry_at = 0.0
        self._probing = False

    @property
    def shared(self) -> bool:
        """False during a fallback episode (the local state answers)."""
        return self._down_since is None

    # --- BreakerStore ------------------------------------------------------------------------

    async def admit(self) -> Admission | Rejection:
        reply = await self._run(self._admit, ())
        if reply is None:
            return await self._fallback.admit()
        state, generation, _, retry_after_s, verdict = reply
        if verdict:
            return Admission(state, generation, trial=verdict == 2)
        return Rejection(state, generation, retry_after_s)

    async def trip(self, generation: int) -> State:
        reply = await self._run(self._trip, (generation,))
        if reply is None:
            return await self._fallback.trip(generation)
        return reply[0]

    async def trial_result(self, generation: int, success: bool) -> State:
        reply = await self._run(self._trial_result, (generation, int(success)))
        if reply is None:
            return await self._fallback.trial_result(generation, success)
        return reply[0]

    async def force(self, state: State) -> State:
        if state not in FORCEABLE:
            raise ValueError("an operator can force open, disable, or reset (close)")
        reply = await self._run(self._force, (int(state),))
        if reply is None:
            return await self._fallback.force(state)
        return reply[0]

    async def snapshot(self) -> Snapshot:
        reply = await self._run(self._snapshot, ())
        if reply is None:
            return await self._fallback.snapshot()
        state, generation, trips, retry_after_s, _ = reply
        return Snapshot(state, generation, trips, retry_after_s)

    # --- Redis, or not -----------------------------------------------------------------------

    async def _run(
        self, script: AsyncScript, args: tuple[int, ...]
    ) -> tuple[State, int, int, float | None, int] | None:
        """The script's parsed reply, or None when the fallback store must answer."""
        probe = False
        if self._down_since is not None:
            if self._probing or self._clock.monotonic() < self._retry_at:
                return None  # cooling down, or another call is already probing
            probe = self._probing = True
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await script(keys=[self.key], args=self._config_args + args)
            reply = _parse(raw)
        except _TROUBLE as exc:
            self._trouble(exc)
            return None
        finally:
            if probe:
                self._probing = False
        if probe:
            self._recovered()
        return reply

    def _trouble(self, exc: BaseException) -> None:
        now = self._clock.monotonic()
        self._retry_at = now + self._cooldown_s
        if self._down_since is not None:
            return  # the same episode: reported when it began
        self._down_since = now
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = f"no answer within {self._timeout_s * 1000:g} ms"
        else:
            reason = f"{type(exc).__name__}: {exc}"[:300]
        self._events.store_fallback(self.dependency, reason)

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        down_for = self._clock.monotonic() - self._down_since
        self._down_since = None
        log.info(
            "circuit_breaker_store_recovered",
            dependency=self.dependency,
            down_for_s=round(down_for, 3),
        )


def _parse(raw: object) -> tuple[State, int, int, float | None, int]:
    if not isinstance(raw, Sequence) or len(raw) != 5:
        raise ValueError(f"unexpected reply from the breaker script: {raw!r}")
    state, generation, trips, retry_after_us, verdict = (int(v) for v in raw)
    retry_after_s = None if retry_after_us < 0 else retry_after_us / 1_000_000
    return State(state), generation, trips, retry_after_s, verdict

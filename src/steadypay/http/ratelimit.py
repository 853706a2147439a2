"""Rate limits: per API key, and per client address for unknown keys (docs/security.md).

Built on ``limits`` (sliding-window counters, the algorithm Cloudflare and Redis' own docs
describe): in Redis when ``STEADYPAY_REDIS_URL`` is set, so every worker and host shares one
count, in the worker's memory otherwise. When Redis does not answer, the limits fall back to
the worker's memory for :data:`FALLBACK_S` and try Redis again: a limit must never turn a
Redis outage into an API outage (the same stance as the shared breakers).

- :meth:`RateLimits.admit` — one unit of the caller's per-key budget, after authentication.
- :meth:`RateLimits.before_lookup` / :meth:`RateLimits.failed_lookup` — an address that sent
  more unknown keys than its budget is refused without a database lookup; each unknown key
  spends a unit. Lookups from one address are therefore bounded by the budget plus the
  requests it has in flight at the moment it runs out. A key that authenticated in the last
  :data:`KNOWN_GOOD_S` is let through even then — known to this worker, or to any worker
  through Redis — so a user behind a busy NAT is not locked out by an attacker on the same
  address.
- :class:`RefuseBlockedAddresses` — the shortcut: once this worker knows an address is blocked,
  its requests with unknown keys get their 429 before the framework runs (a refused request
  then costs little more than parsing it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from steadypay.errors import RateLimited
from steadypay.http.responses import error_response
from steadypay.keys import digest

log = logging.getLogger(__name__)

FALLBACK_S = 5.0
KNOWN_GOOD_S = 300.0
KNOWN_GOOD_MAX = 100_000

LIMITED = Counter(
    "steadypay_rate_limited",
    "Requests refused with 429 rate_limited, by limit (user_key, admin_key, auth_failures).",
    ["limit"],
)
STORAGE_FALLBACKS = Counter(
    "steadypay_rate_limit_storage_fallbacks",
    "Times the rate limits fell back from Redis to the worker's memory.",
)


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """Which limits apply; ``None`` is unlimited."""

    per_user_key: str | None = "100/second"
    per_admin_key: str | None = "2000/second"
    auth_failures: str = "20/minute"


def _item(text: str | None) -> RateLimitItem | None:
    return None if text is None else parse(text)


class _Limiter:
    """A sliding-window limiter on Redis with the worker's memory as the fallback."""

    def __init__(self, shared: Storage | None, clock: Callable[[], float]) -> None:
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared = SlidingWindowCounterRateLimiter(shared) if shared else None
        self._shared_storage = shared
        self._clock = clock
        self._shared_down_until = 0.0

    def _pick(self) -> SlidingWindowCounterRateLimiter:
        if self._shared is not None and self._clock() >= self._shared_down_until:
            return self._shared
        return self._local

    def _fell_back(self, exc: Exception) -> None:
        if self._clock() >= self._shared_down_until:
            log.warning("rate limits: Redis failed (%s); local limits for %ss", exc, FALLBACK_S)
            STORAGE_FALLBACKS.inc()
        self._shared_down_until = self._clock() + FALLBACK_S

    async def hit(self, item: RateLimitItem, key: str) -> bool:
        limiter = self._pick()
        try:
            return await limiter.hit(item, key)
        except Exception as exc:
            if limiter is self._local:
                raise
            self._fell_back(exc)
            return await self._local.hit(item, key)

    async def test(self, item: RateLimitItem, key: str) -> bool:
        limiter = self._pick()
        try:
            return await limiter.test(item, key)
        except Exception as exc:
            if limiter is self._local:
                raise
            self._fell_back(exc)
            return await self._local.test(item, key)

    async def aclose(self) -> None:
        """Close the Redis connections (``limits`` has no close of its own: its redis-py
        bridge holds the client as ``bridge.storage``)."""
        client = getattr(getattr(self._shared_storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()

    async def reset_in(self, item: RateLimitItem, key: str) -> float:
        """Seconds until one more request would be admitted (at least a second)."""
        limiter = self._pick()
        try:
            stats = await limiter.get_window_stats(item, key)
        except Exception:  # noqa: BLE001 - only for the Retry-After header
            return float(item.get_expiry())
        return max(1.0, stats.reset_time - time.time())


class RateLimits:
    def __init__(
        self,
        policy: RatePolicy,
        *,
        enabled: bool = True,
        storage: Storage | None = None,
        redis: Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``storage``: where the counters live (None: memory); ``redis``: where workers share
        the keys known to be good (None: each worker knows its own)."""
        self.enabled = enabled
        self._redis = redis
        self._limiter = _Limiter(storage, clock)
        self._clock = clock
        self._per_user = _item(policy.per_user_key)
        self._per_admin = _item(policy.per_admin_key)
        self._failures = parse(policy.auth_failures)
        self._known_good: OrderedDict[bytes, float] = OrderedDict()
        self._blocked: dict[str, float] = {}
        """addresses past their unknown-key budget, until when (this worker's clock)"""

    async def aclose(self) -> None:
        await self._limiter.aclose()

    async def admit(self, actor: str, *, operator: bool) -> None:
        """Spend one unit of ``actor``'s budget or raise :class:`RateLimited`."""
        item = self._per_admin if operator else self._per_user
        if not self.enabled or item is None:
            return
        if not await self._limiter.hit(item, "key:" + actor):
            await self._refuse(item, "key:" + actor, "admin_key" if operator else "user_key")

    async def before_lookup(self, address: str, key_hash: bytes) -> None:
        """Before a database lookup of ``key_hash`` from ``address``: refuse an address that
        spent its budget of unknown keys, unless this key is known to be good."""
        if not self.enabled or self._is_known_good(key_hash):
            return
        now = self._clock()
        until = self._blocked.get(address)
        if until is None or until <= now:
            # not known to be blocked: ask the counters (an address that is blocked is
            # remembered until its Retry-After, so a flood costs no counter round trips)
            if await self._limiter.test(self._failures, "addr:" + address):
                self._blocked.pop(address, None)
                return
            until = now + await self._limiter.reset_in(self._failures, "addr:" + address)
            self._blocked[address] = until
            while len(self._blocked) > KNOWN_GOOD_MAX:
                self._blocked.pop(next(iter(self._blocked)))
        refusal = await self._refusal(key_hash, until - now)
        if refusal is not None:
            raise refusal

    async def early_refusal(self, address: str, key_hash: bytes) -> RateLimited | None:
        """For :class:`RefuseBlockedAddresses`: the 429 of a request from an address this
        worker already knows to be blocked, with a key not known to be good; None when the
        request must go on (the dependency then decides, as for every other request)."""
        if not self._blocked or self._is_known_good(key_hash):
            return None
        until = self._blocked.get(address)
        now = self._clock()
        if until is None or until <= now:
            return None
        return await self._refusal(key_hash, until - now)

    async def _refusal(self, key_hash: bytes, retry_after_s: float) -> RateLimited | None:
        if await self._shared_known_good(key_hash):
            self._remember(key_hash)
            return None
        LIMITED.labels("auth_failures").inc()
        return RateLimited(
            limit=self._failures.amount,
            window_s=self._failures.get_expiry(),
            retry_after_s=max(1, math.ceil(retry_after_s)),
            which="auth_failures",
        )

    def has_blocked(self) -> bool:
        """Whether this worker knows of any blocked address (the cheap test of the ASGI
        shortcut)."""
        return bool(self._blocked)

    async def failed_lookup(self, address: str) -> None:
        """A key from ``address`` matched nobody: one unit of the address's budget."""
        if self.enabled:
            await self._limiter.hit(self._failures, "addr:" + address)

    async def succeeded(self, key_hash: bytes) -> None:
        """``key_hash`` authenticated: it passes an address over its budget from now on (for
        :data:`KNOWN_GOOD_S`). Told to Redis once per key and worker in that time."""
        if not self.enabled or self._is_known_good(key_hash):
            return
        self._remember(key_hash)
        if self._redis is not None:
            try:
                await self._redis.set(_good_key(key_hash), b"1", ex=int(KNOWN_GOOD_S))
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("rate limits: could not share a known-good key: %s", exc)

    def _remember(self, key_hash: bytes) -> None:
        self._known_good[key_hash] = self._clock() + KNOWN_GOOD_S
        self._known_good.move_to_end(key_hash)
        while len(self._known_good) > KNOWN_GOOD_MAX:
            self._known_good.popitem(last=False)

    def _is_known_good(self, key_hash: bytes) -> bool:
        until = self._known_good.get(key_hash)
        if until is None:
            return False
        if until < self._clock():
            del self._known_good[key_hash]
            return False
        return True

    async def _shared_known_good(self, key_hash: bytes) -> bool:
        if self._redis is None:
            return False
        try:
            return bool(await self._redis.exists(_good_key(key_hash)))
        except (RedisError, OSError, TimeoutError):
            return False

    async def _refuse(self, item: RateLimitItem, key: str, limit: str) -> None:
        LIMITED.labels(limit).inc()
        retry_after = await self._limiter.reset_in(item, key)
        raise RateLimited(
            limit=item.amount,
            window_s=item.get_expiry(),
            retry_after_s=math.ceil(retry_after),
            which=limit,
        )


def _good_key(key_hash: bytes) -> str:
    # a hash of the stored hash: Redis learns nothing that PostgreSQL does not already hold
    return "steadypay:ratelimit:good:" + hashlib.sha256(key_hash).hexdigest()[:32]


def shared_storage(redis_url: str, timeout_s: float) -> Storage:
    """Counters in Redis (redis-py, the client steadypay already uses), under our prefix."""
    uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
    return RedisStorage(
        uri,
        implementation="redispy",
        key_prefix="steadypay:ratelimit",
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


class RefuseBlockedAddresses:
    """ASGI middleware of the payment API: a request from an address that this worker knows to
    be past its unknown-key budget, with a bearer key not known to be good, gets its 429 here,
    before routing, dependency solving and the inner middlewares (what a flood of refused
    requests would otherwise cost). Every other request goes on; the authentication
    dependency stays the one place that decides (this is only its shortcut)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            container = getattr(scope["app"].state, "container", None)
            limits: RateLimits | None = getattr(container, "rate_limits", None)
            if limits is not None and limits.enabled and limits.has_blocked():
                refusal = await self._refusal(scope, limits)
                if refusal is not None:
                    await error_response(refusal)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refusal(scope: Scope, limits: RateLimits) -> RateLimited | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                if scheme.lower() != "bearer" or not token:
                    return None
                client = scope.get("client")
                address = client[0] if client else "unknown"
                return await limits.early_refusal(address, digest(token))
        return None

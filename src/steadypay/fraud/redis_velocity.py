"""Velocity and history in Redis, recorded and queried atomically by one Lua script.

**Keys** (all under ``steadypay:fraud:``; every one expires):

- ``check:<transfer_id>`` — hash: ``fp`` (request fingerprint), ``at`` (ms since the epoch),
  ``facts`` (what the history said then, see ``_format``) and, once decided, ``verdict``
  (JSON). Expires after the idempotency period.
- ``sent:<sender_user_id>`` — sorted set of the sender's checks, member
  ``<transfer_id>|<currency>|<amount_minor>``, score the time in ms; entries older than the
  longest velocity window are trimmed on each check, and the key expires after that window.
- ``pair:<sender>:<receiver_key>`` — the time (ms) of the latest check from sender to
  receiver; expires after the receiver memory (or the back-and-forth window if longer).

**One check** runs ``_RECORD``: if ``check:<id>`` exists it answers what is stored (a replay);
else it trims and reads ``sent:``, reads both ``pair:`` keys, adds this check to ``sent:`` and
``pair:``, and stores ``check:<id>`` with the facts. Python then evaluates the facts and stores
the verdict (``HSETNX``). A repeat arriving between the two steps, or after a crash between
them, evaluates the stored facts again: the rules are deterministic, so the verdict is the same.

Sums are computed in Lua as two exact parts (``amount // 10**9`` and ``amount % 10**9``) so
that a sum beyond 2**53 minor units stays exact in Lua's doubles. Time comes from the caller
(the same clock the PostgreSQL store uses), not from Redis.

The keys of one check live in different hash slots: this needs a standalone Redis (or one
primary), not Redis Cluster.

Any Redis trouble (error, timeout, malformed reply) raises
:class:`~steadypay.fraud.velocity.StoreTrouble`, so the PostgreSQL store can answer instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from steadypay.errors import IdempotencyKeyReuse
from steadypay.fraud.domain import Check, Facts, Verdict
from steadypay.fraud.velocity import Decide, Recorded, StoreName, StoreTrouble

log = structlog.get_logger(__name__)

KEY_PREFIX: Final = "steadypay:fraud:"

_TROUBLE: Final = (RedisError, OSError, ValueError, LookupError, TypeError)

# KEYS: check, sent, pair (sender -> receiver), reverse pair (receiver -> sender)
# ARGV: fp, now_ms, member, currency, check_ttl_ms, sent_ttl_ms, pair_ttl_ms,
#       reverse ('1' or '0'), window_ms...
_RECORD: Final = """
local old = redis.call('HMGET', KEYS[1], 'fp', 'at', 'facts', 'verdict')
if old[1] then
  return {0, old[1], old[2] or '', old[3] or '', old[4] or ''}
end
local function fmt(x) return string.format('%.0f', x) end
local now = tonumber(ARGV[2])
local sent_ttl = tonumber(ARGV[6])
local windows, counts, his, los = {}, {}, {}, {}
for i = 9, #ARGV do
  windows[#windows + 1] = tonumber(ARGV[i])
  counts[#windows], his[#windows], los[#windows] = 0, 0, 0
end
if sent_ttl > 0 then
  local oldest = '(' .. fmt(now - sent_ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', oldest)
  local entries = redis.call('ZRANGEBYSCORE', KEYS[2], oldest, '+inf', 'WITHSCORES')
  for k = 1, #entries, 2 do
    local score = tonumber(entries[k + 1])
    local currency, amount = string.match(entries[k], '^[^|]+|(%u%u%u)|(%d+)$')
    local hi, lo = 0, 0
    if amount and currency == ARGV[4] then
      local n = #amount
      if n > 9 then
        hi, lo = tonumber(string.sub(amount, 1, n - 9)), tonumber(string.sub(amount, n - 8))
      else
        lo = tonumber(amount)
      end
    end
    for j = 1, #windows do
      if score > now - windows[j] then
        counts[j] = counts[j] + 1
        his[j] = his[j] + hi
        los[j] = los[j] + lo
      end
    end
  end
end
local last_to = redis.call('GET', KEYS[3])
local last_from = false
if ARGV[8] == '1' then last_from = redis.call('GET', KEYS[4]) end
local parts = {ARGV[2], last_to or '-', last_from or '-'}
for j = 1, #windows do
  parts[#parts + 1] = fmt(windows[j]) .. ':' .. fmt(counts[j]) .. ':' .. fmt(his[j]) .. ':'
    .. fmt(los[j])
end
local facts = table.concat(parts, ',')
if sent_ttl > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
local newest = ARGV[2]
if last_to and tonumber(last_to) > now then newest = last_to end
redis.call('SET', KEYS[3], newest, 'PX', ARGV[7])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'at', ARGV[2], 'facts', facts)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, ARGV[1], ARGV[2], facts, ''}
"""

# Store the verdict once, and only on a check that still exists (no key without a TTL).
_KEEP_VERDICT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSETNX', KEYS[1], 'verdict', ARGV[1])
end
return 0
"""

_LOW_DIGITS: Final = 10**9


def to_ms(at: datetime) -> int:
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


class RedisVelocity:
    name: StoreName = "redis"

    def __init__(
        self,
        redis: Redis,
        *,
        windows_s: tuple[int, ...],
        pair_ttl: timedelta,
        check_ttl: timedelta,
        timeout_s: float,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._redis = redis
        self._windows_ms = [w * 1000 for w in windows_s]
        self._sent_ttl_ms = max(self._windows_ms, default=0)
        self._pair_ttl_ms = max(1, pair_ttl // timedelta(milliseconds=1))
        self._check_ttl_ms = max(1, check_ttl // timedelta(milliseconds=1))
        self._timeout_s = timeout_s
        # register_script does no I/O; the Script runs EVALSHA and loads the text on NOSCRIPT.
        self._record = redis.register_script(_RECORD)
        self._keep_verdict = redis.register_script(_KEEP_VERDICT)

    async def record(self, check: Check, at: datetime, decide: Decide) -> Recorded:
        fingerprint = check.fingerprint()
        sender = str(check.sender_user_id)
        reverse = check.reverse_key
        check_key = f"{KEY_PREFIX}check:{check.transfer_id}"
        keys = [
            check_key,
            f"{KEY_PREFIX}sent:{sender}",
            f"{KEY_PREFIX}pair:{sender}:{check.receiver_key}",
            f"{KEY_PREFIX}pair:{reverse if reverse is not None else '-'}:{sender}",
        ]
        args: list[str | int] = [
            fingerprint,
            to_ms(at),
            f"{check.transfer_id}|{check.currency.code}|{check.amount_minor}",
            check.currency.code,
            self._check_ttl_ms,
            self._sent_ttl_ms,
            self._pair_ttl_ms,
            "0" if reverse is None else "1",
            *self._windows_ms,
        ]
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._record(keys=keys, args=args)
            fresh, stored_fp, facts_text, verdict_text = _parse_reply(raw)
            if stored_fp != fingerprint:
                raise IdempotencyKeyReuse(
                    "this transfer_id was already checked with different details",
                    param="transfer_id",
                    details={"transfer_id": str(check.transfer_id)},
                )
            if verdict_text:
                return Recorded(Verdict.loads(verdict_text), replayed=True, store=self.name)
            facts = parse_facts(facts_text)
        except _TROUBLE as exc:
            raise StoreTrouble(_describe(exc, self._timeout_s)) from exc
        verdict = decide(facts)
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._keep_verdict(keys=[check_key], args=[verdict.dumps()])
        except _TROUBLE as exc:
            # The facts are stored: a repeat evaluates them again to the same verdict.
            log.warning(
                "fraud_verdict_not_stored",
                transfer_id=str(check.transfer_id),
                reason=_describe(exc, self._timeout_s),
            )
        return Recorded(verdict, replayed=not fresh, store=self.name)


def _parse_reply(raw: object) -> tuple[bool, str, str, str]:
    if not isinstance(raw, Sequence) or len(raw) != 5:
        raise ValueError(f"unexpected reply from the fraud record script: {raw!r}"[:300])
    status, fingerprint, _, facts, verdict = raw
    return int(status) == 1, _text(fingerprint), _text(facts), _text(verdict)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected value in a fraud record reply: {value!r}"[:300])


def parse_facts(text: str) -> Facts:
    """The facts string written by ``_RECORD``: ``at,last_to,last_from,w:count:hi:lo,...``
    (times in ms, ``-`` for none)."""
    at, last_to, last_from, *windows = text.split(",")
    counts: dict[int, int] = {}
    sums: dict[int, int] = {}
    for window in windows:
        window_ms, count, hi, lo = (int(part) for part in window.split(":"))
        counts[window_ms // 1000] = count
        sums[window_ms // 1000] = hi * _LOW_DIGITS + lo
    return Facts(
        at=from_ms(int(at)),
        counts=counts,
        sums_minor=sums,
        last_to_receiver_at=None if last_to == "-" else from_ms(int(last_to)),
        last_from_receiver_at=None if last_from == "-" else from_ms(int(last_from)),
    )


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s * 1000:g} ms"
    return f"{type(exc).__name__}: {exc}"[:300]

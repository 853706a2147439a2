"""The delivery worker: POSTs signed events to webhook endpoints until they answer 2xx.

It runs inside the notification service's process (started by the app's lifespan). Like the
outbox relay it claims due deliveries with a lease (``FOR UPDATE SKIP LOCKED``), so several
processes may run side by side, and fences outcomes with the claim's ``attempts``.

A delivery is one POST of the event's JSON with ``Steadypay-Signature`` and
``Steadypay-Event-Id`` (see :mod:`steadypay.notifications.signing`), within
``delivery_timeout_s``, redirects not followed, the answer's body not read. A 2xx ends it;
anything else is retried after full-jitter exponential backoff until ``give_up_at`` (72 h after
the event), after which the delivery is ``failed``.

Deliveries go through the SSRF guard (:mod:`steadypay.notifications.egress`): the host is
resolved at delivery time and a connection is made only to addresses the options' policy
allows. A delivery the guard refuses is ``failed`` at once, its ``last_error`` saying which
address and why (``refused by the SSRF guard: ...``), and is not retried: its name pointing
inside is no outage to wait out. The endpoint stays: the next event is checked anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import httpx
import structlog

from steadypay import __version__
from steadypay.db.router import DatabaseRouter
from steadypay.errors import ServiceUnavailable
from steadypay.notifications import repository
from steadypay.notifications.domain import ClaimedDelivery, DeliveryStatus
from steadypay.notifications.egress import DeliveryRefused, PinnedTransport
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from steadypay.resilience.retry import poll_backoff_s, retry_delay_s

log = structlog.get_logger(__name__)

USER_AGENT = f"steadypay-webhooks/{__version__}"


def webhook_http_client(
    options: NotificationOptions, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The delivery client: through the SSRF guard (``options.delivery_policy``) unless a
    ``transport`` is given (tests swapping the network)."""
    if transport is None:
        transport = PinnedTransport(
            options.delivery_policy, max_connections=options.concurrency * 2
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(options.delivery_timeout_s),
        limits=httpx.Limits(max_connections=options.concurrency * 2),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


class DeliveryWorker:
    def __init__(
        self,
        db: DatabaseRouter,
        http: httpx.AsyncClient,
        options: NotificationOptions,
        *,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._http = http
        self._options = options
        self._rng = rng
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New deliveries exist: claim now rather than after the poll interval."""
        self._wake.set()

    async def run_once(self) -> dict[str, int]:
        claimed_at = self._monotonic()
        async with self._db.writer().connection() as conn:
            claimed = await repository.claim_deliveries(
                conn, self._options.batch_size, self._options.lease_s
            )
        counts = {"claimed": len(claimed), "delivered": 0, "retried": 0, "failed": 0, "refused": 0}
        if not claimed:
            return counts
        slots = asyncio.Semaphore(self._options.concurrency)

        async def bounded(delivery: ClaimedDelivery) -> str:
            async with slots:
                return await self._attempt(delivery, claimed_at)

        for outcome in await asyncio.gather(*(bounded(d) for d in claimed)):
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("webhook_worker_started")
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                counts = await self.run_once()
            except ServiceUnavailable as exc:
                failures += 1
                delay = poll_backoff_s(failures, self._options.poll_interval_s)
                log.warning("webhook_worker_db_unavailable", error=exc.code, retry_in_s=delay)
                await self._sleep(stop, delay)
                continue
            except Exception:  # a bug must not stop webhook delivery for good
                failures += 1
                log.exception("webhook_worker_error")
                await self._sleep(stop, poll_backoff_s(failures, self._options.poll_interval_s))
                continue
            failures = 0
            if counts["claimed"] < self._options.batch_size:
                await self._sleep(stop, self._options.poll_interval_s)
        log.info("webhook_worker_stopped")

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Until ``seconds`` pass, ``stop`` is set, or new deliveries arrive."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _attempt(self, delivery: ClaimedDelivery, claimed_at: float) -> str:
        options = self._options
        try:
            if self._monotonic() - claimed_at + options.delivery_timeout_s + 1 >= options.lease_s:
                async with self._db.writer().connection() as conn:
                    await repository.release(conn, delivery.id, delivery.attempts)
                return "deferred"
            try:
                status_code, error = await self._post(delivery)
            except DeliveryRefused as refused:
                return await self._refused(delivery, refused)
            async with self._db.writer().connection() as conn:
                if error is None:
                    assert status_code is not None
                    await repository.mark_delivered(conn, delivery.id, status_code)
                    log.info(
                        "webhook_delivered",
                        delivery_id=str(delivery.id),
                        event_id=str(delivery.event_id),
                        attempts=delivery.attempts,
                    )
                    return "delivered"
                delay = retry_delay_s(
                    delivery.attempts, options.backoff_base_s, options.backoff_cap_s, self._rng
                )
                status = await repository.record_failure(
                    conn,
                    delivery.id,
                    delivery.attempts,
                    status_code=status_code,
                    error=error,
                    delay_s=delay,
                )
        except ServiceUnavailable as exc:
            log.warning("webhook_outcome_unrecorded", delivery_id=str(delivery.id), error=exc.code)
            return "unrecorded"
        failed = status is DeliveryStatus.FAILED
        (log.warning if failed else log.info)(
            "webhook_failed" if failed else "webhook_retry_scheduled",
            delivery_id=str(delivery.id),
            event_id=str(delivery.event_id),
            attempts=delivery.attempts,
            status_code=status_code,
            error=error,
            retry_in_s=None if failed else round(delay, 3),
        )
        return "failed" if failed else "retried"

    async def _refused(self, delivery: ClaimedDelivery, refused: DeliveryRefused) -> str:
        """Record the guard's refusal: the delivery is failed, not retried."""
        async with self._db.writer().connection() as conn:
            await repository.record_refusal(
                conn, delivery.id, delivery.attempts, error=str(refused)[:500]
            )
        log.warning(
            "webhook_refused",
            delivery_id=str(delivery.id),
            event_id=str(delivery.event_id),
            host=refused.host,
            address=str(refused.address),
            reason=refused.reason,
        )
        return "refused"

    async def _post(self, delivery: ClaimedDelivery) -> tuple[int | None, str | None]:
        """(status code, None) on a 2xx; else (status code or None, what went wrong)."""
        body = delivery.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, delivery.secrets, int(self._wall_clock())),
            EVENT_ID_HEADER: str(delivery.event_id),
        }
        try:
            async with (
                asyncio.timeout(self._options.delivery_timeout_s),
                self._http.stream("POST", delivery.url, content=body, headers=headers) as answer,
            ):
                status_code = answer.status_code
        except TimeoutError:
            return None, f"no answer within {self._options.delivery_timeout_s:g}s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= status_code < 300:
            return status_code, None
        return status_code, f"endpoint answered {status_code}"

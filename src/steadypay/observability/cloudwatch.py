"""CloudWatch export of each service's request metrics: the seed's ``ReliabilityMetrics`` sink.

With ``STEADYPAY_CLOUDWATCH_NAMESPACE`` set, every service (api, fraud, notifications) exports
two metrics with the dimensions ``Service`` (``api`` ...) and ``Status`` (the status class:
``2xx``, ``3xx``, ``4xx``, ``5xx``, or ``other``, so at most five series per service):

- ``RequestCount`` (Count): a statistic set per flush interval, ``Sum`` = ``SampleCount`` =
  the requests answered, as if one datum of 1 had been sent per request.
- ``ResponseTime`` (Milliseconds): ``Values``/``Counts`` per flush interval, each duration
  rounded to one of 150 geometric steps (0.1 ms x 1.1^i, up to 146 s, within 5%), so CloudWatch
  can answer percentiles (p50, p99), not only averages.

Unlike the seed (one blocking ``PutMetricData`` per request, awaited on the request path), the
request path only adds to a dict (:meth:`CloudWatchExporter.observe`). A background task
aggregates per flush interval and sends the datums in batches within the API's limits (1000
metrics and 1 MB per call) from a thread of its own, with botocore's connect/read timeouts and
at most two attempts, so a slow or absent CloudWatch can stall neither the event loop nor a
payment. Unsent datums wait in a bounded buffer; beyond the bound the oldest are dropped and
counted in ``steadypay_cloudwatch_datapoints_dropped_total{reason}``. Several worker processes
each send their own aggregates: CloudWatch adds them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from prometheus_client import Counter

from steadypay.config import Settings
from steadypay.observability.metrics import RequestObserver

if TYPE_CHECKING:
    from types_boto3_cloudwatch.client import CloudWatchClient
    from types_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDatumTypeDef

log = structlog.get_logger(__name__)

DEFAULT_REGION = "us-east-1"
MAX_DATUMS_PER_CALL = 1000
"""PutMetricData accepts at most 1000 metrics per call..."""
MAX_CALL_BYTES = 512 * 1024
"""...and 1 MB per call: batches stay under half of it by a generous estimate of each datum."""
MAX_ATTEMPTS = 2
"""botocore's attempts per call (standard retry mode): one retry, then the next flush retries."""

LATENCY_BASE_MS = 0.1
LATENCY_RATIO = 1.1
LATENCY_STEPS = 150
"""A Values array holds at most 150 values: one per step, 0.1 ms up to 0.1 x 1.1^149 = 146 s."""
LATENCY_VALUES = tuple(
    float(f"{LATENCY_BASE_MS * LATENCY_RATIO**i:.4g}") for i in range(LATENCY_STEPS)
)
_INV_LOG_RATIO = 1 / math.log(LATENCY_RATIO)
_INV_BASE_MS = 1 / LATENCY_BASE_MS

DATAPOINTS_SENT = Counter(
    "steadypay_cloudwatch_datapoints_sent_total",
    "Datums (one metric, Service and Status over one flush interval) accepted by CloudWatch",
)
DATAPOINTS_DROPPED = Counter(
    "steadypay_cloudwatch_datapoints_dropped_total",
    "Datums never sent: buffer_full (oldest dropped while CloudWatch was slow or down), "
    "rejected (CloudWatch refused the batch), shutdown (unsent when the process stopped)",
    ["reason"],
)


@dataclasses.dataclass(frozen=True, slots=True)
class CloudWatchConfig:
    namespace: str
    region: str | None = None
    flush_interval_s: float = 60.0
    max_buffered_datums: int = 2_000
    timeout_s: float = 2.0
    shutdown_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CloudWatchConfig | None:
        """The configured export, or None when ``STEADYPAY_CLOUDWATCH_NAMESPACE`` is unset."""
        if not settings.cloudwatch_namespace:
            return None
        return cls(
            namespace=settings.cloudwatch_namespace,
            region=settings.cloudwatch_region,
            flush_interval_s=settings.cloudwatch_flush_interval_s,
            max_buffered_datums=settings.cloudwatch_max_buffered_datums,
            timeout_s=settings.cloudwatch_timeout_s,
            shutdown_timeout_s=settings.cloudwatch_shutdown_timeout_s,
        )


def status_class(status: int) -> str:
    """The ``Status`` dimension: ``2xx`` for 200..299 and so on; a bounded set of values."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def latency_step(duration_s: float) -> int:
    """The index of the step of LATENCY_VALUES nearest to ``duration_s`` (log scale)."""
    scaled = duration_s * 1000 * _INV_BASE_MS
    if scaled <= 1:
        return 0
    return min(round(math.log(scaled) * _INV_LOG_RATIO), LATENCY_STEPS - 1)


class Sender(Protocol):
    """Sends one batch synchronously, raising on failure; runs in the exporter's thread."""

    def send(self, namespace: str, batch: Sequence[MetricDatumTypeDef]) -> None: ...

    def close(self) -> None: ...


class Boto3Sender:
    """``PutMetricData`` on a boto3 client made on first use, in the sender's thread (building
    a client reads files). Region, credentials and endpoint (``AWS_ENDPOINT_URL``) come from
    boto3's standard chain; the region falls back to us-east-1."""

    def __init__(self, config: CloudWatchConfig) -> None:
        self.config = config
        self._client: CloudWatchClient | None = None

    def send(self, namespace: str, batch: Sequence[MetricDatumTypeDef]) -> None:
        if self._client is None:
            import boto3  # here, not at import: services without the export never load it
            from botocore.config import Config

            session = boto3.session.Session()
            self._client = session.client(
                "cloudwatch",
                region_name=self.config.region or session.region_name or DEFAULT_REGION,
                config=Config(
                    connect_timeout=self.config.timeout_s,
                    read_timeout=self.config.timeout_s,
                    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                ),
            )
        self._client.put_metric_data(Namespace=namespace, MetricData=batch)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _estimated_bytes(datum: MetricDatumTypeDef) -> int:
    """A generous bound on a datum's encoded size (about 90 bytes per value and count in the query
    encoding, far less in CBOR)."""
    return 400 + 100 * len(datum.get("Values", ()))


def _retryable(exc: Exception) -> bool:
    """Worth sending again next flush: the network, a timeout, throttling, a 5xx; not a
    request CloudWatch (or botocore's validation) refuses as such."""
    if isinstance(exc, ParamValidationError):
        return False
    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode", 500))
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or status == 429 or "Throttl" in code
    return True


class CloudWatchExporter:
    """A :class:`~steadypay.observability.metrics.RequestObserver` that aggregates requests in
    memory and sends them to CloudWatch from a background task (:meth:`start`, :meth:`stop`)."""

    def __init__(
        self,
        config: CloudWatchConfig,
        sender: Sender | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.sender = sender or Boto3Sender(config)
        self._clock = clock
        # (service, status class) -> {latency step: requests}
        self._current: dict[tuple[str, str], dict[int, int]] = {}
        self.pending: deque[MetricDatumTypeDef] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failing = False

    # --- the request path: memory only ---------------------------------------------------
    def observe(
        self, service: str, route: str, method: str, status: int, duration_s: float
    ) -> None:
        key = (service, status_class(status))
        steps = self._current.get(key)
        if steps is None:
            steps = self._current[key] = {}
        step = latency_step(duration_s)
        steps[step] = steps.get(step, 0) + 1

    # --- aggregation and sending ---------------------------------------------------------
    def collect(self) -> None:
        """Close the current interval: its aggregates become datums in the buffer, whose
        oldest entries are dropped past the bound."""
        current, self._current = self._current, {}
        now = self._clock()
        for (service, status), steps in current.items():
            dimensions: list[DimensionTypeDef] = [
                {"Name": "Service", "Value": service},
                {"Name": "Status", "Value": status},
            ]
            count = float(sum(steps.values()))
            ordered = sorted(steps.items())
            self.pending.append(
                {
                    "MetricName": "RequestCount",
                    "Dimensions": dimensions,
                    "Timestamp": now,
                    "Unit": "Count",
                    "StatisticValues": {
                        "SampleCount": count,
                        "Sum": count,
                        "Minimum": 1.0,
                        "Maximum": 1.0,
                    },
                }
            )
            self.pending.append(
                {
                    "MetricName": "ResponseTime",
                    "Dimensions": dimensions,
                    "Timestamp": now,
                    "Unit": "Milliseconds",
                    "Values": [LATENCY_VALUES[step] for step, _ in ordered],
                    "Counts": [float(n) for _, n in ordered],
                }
            )
        overflow = len(self.pending) - self.config.max_buffered_datums
        if overflow > 0:
            for _ in range(overflow):
                self.pending.popleft()
            DATAPOINTS_DROPPED.labels("buffer_full").inc(overflow)
            log.warning("cloudwatch_buffer_full", dropped=overflow, kept=len(self.pending))

    def _next_batch(self) -> list[MetricDatumTypeDef]:
        batch: list[MetricDatumTypeDef] = []
        size = 0
        for datum in self.pending:
            size += _estimated_bytes(datum)
            if batch and (len(batch) == MAX_DATUMS_PER_CALL or size > MAX_CALL_BYTES):
                break
            batch.append(datum)
        return batch

    async def flush(self) -> None:
        """Collect, then send the buffer oldest first, one batch per call. A retryable failure
        leaves the rest for the next flush; a rejected batch is dropped. Never raises."""
        self.collect()
        loop = asyncio.get_running_loop()
        while self.pending:
            batch = self._next_batch()
            started = loop.time()
            try:
                await loop.run_in_executor(
                    self._executor, self.sender.send, self.config.namespace, batch
                )
            except (BotoCoreError, ClientError, OSError) as exc:
                if _retryable(exc):
                    if not self._failing:
                        log.warning(
                            "cloudwatch_unreachable",
                            error=type(exc).__name__,
                            kept=len(self.pending),
                        )
                    self._failing = True
                    return
                self._remove(len(batch))
                DATAPOINTS_DROPPED.labels("rejected").inc(len(batch))
                log.error("cloudwatch_rejected_batch", error=str(exc), datums=len(batch))
                continue
            self._remove(len(batch))
            DATAPOINTS_SENT.inc(len(batch))
            if self._failing:
                log.info("cloudwatch_reachable_again")
                self._failing = False
            log.debug(
                "cloudwatch_flushed", datums=len(batch), ms=round((loop.time() - started) * 1000)
            )

    def _remove(self, n: int) -> None:
        for _ in range(n):
            self.pending.popleft()

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudwatch")
        self._task = asyncio.create_task(self._run(), name="cloudwatch-export")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.flush_interval_s)
            try:
                await self.flush()  # the last one after stop(): the final flush
            except Exception:  # a bug here must not end the export, let alone the service
                log.exception("cloudwatch_flush_failed")
            if self._stopping.is_set():
                return

    async def stop(self) -> None:
        """Flush what was observed, waiting at most ``shutdown_timeout_s``; what is still
        unsent then is counted as dropped (reason ``shutdown``)."""
        self._stopping.set()
        hung = False
        if self._task is not None:
            try:
                async with asyncio.timeout(self.config.shutdown_timeout_s):
                    await self._task
            except TimeoutError:
                hung = True
                log.warning("cloudwatch_final_flush_timed_out")
        self.collect()
        if self.pending:
            DATAPOINTS_DROPPED.labels("shutdown").inc(len(self.pending))
            self.pending.clear()
        if self._executor is None:
            self.sender.close()
            return
        closed = asyncio.get_running_loop().run_in_executor(self._executor, self.sender.close)
        # a call still hung ends by its botocore timeouts, then the client closes: no waiting
        self._executor.shutdown(wait=False)
        if not hung:
            await closed


@contextlib.asynccontextmanager
async def cloudwatch_export(
    settings: Settings, observers: list[RequestObserver]
) -> AsyncIterator[CloudWatchExporter | None]:
    """For a service's lifespan: when configured, start an exporter and add it to the app's
    request observers; at exit remove it and flush (bounded). Unconfigured: does nothing."""
    config = CloudWatchConfig.from_settings(settings)
    if config is None:
        yield None
        return
    exporter = CloudWatchExporter(config)
    await exporter.start()
    observers.append(exporter)
    log.info(
        "cloudwatch_export_started",
        namespace=config.namespace,
        flush_interval_s=config.flush_interval_s,
    )
    try:
        yield exporter
    finally:
        with contextlib.suppress(ValueError):
            observers.remove(exporter)
        await exporter.stop()

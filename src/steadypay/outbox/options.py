"""The outbox relay's tunables, in one value. The defaults are the production values: those of
the ``STEADYPAY_OUTBOX_*`` settings (:class:`steadypay.config.OutboxSettings`), from the same
constants."""

from __future__ import annotations

from dataclasses import dataclass

from steadypay.config.contexts import (
    OUTBOX_BACKOFF_BASE_S,
    OUTBOX_BACKOFF_CAP_S,
    OUTBOX_BATCH_SIZE,
    OUTBOX_DELIVERY_BATCH_SIZE,
    OUTBOX_LEASE_S,
    OUTBOX_MAX_AGE_HOURS,
)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch_size: int = OUTBOX_BATCH_SIZE
    """Events leased per claim."""
    delivery_batch_size: int = OUTBOX_DELIVERY_BATCH_SIZE
    """Events per POST to the receiver's batch endpoint (1: one POST per event)."""
    lease_s: float = OUTBOX_LEASE_S
    """How long a claimed event is reserved for the relay that claimed it; must outlive a
    delivery (the dependency's ``total_timeout_s``)."""
    max_age_s: float = OUTBOX_MAX_AGE_HOURS * 3600
    """An event older than this that fails is marked ``dead``."""
    backoff_base_s: float = OUTBOX_BACKOFF_BASE_S
    backoff_cap_s: float = OUTBOX_BACKOFF_CAP_S
    """Full-jitter backoff between an event's attempts: ``base * 2^(attempts-1)``, capped."""
    concurrency: int = 16
    """Deliveries (POSTs) in flight at once, per relay."""
    idle_sleep_s: float = 0.5
    """Wait between claims when the last batch was not full (doubled per failed round)."""

    def __post_init__(self) -> None:
        if min(self.batch_size, self.concurrency, self.delivery_batch_size) < 1:
            raise ValueError("batch_size, delivery_batch_size and concurrency must be at least 1")
        if self.lease_s <= 0 or self.max_age_s <= 0 or self.idle_sleep_s <= 0:
            raise ValueError("lease_s, max_age_s and idle_sleep_s must be positive")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoffs must be non-negative")

"""The notification service's tunables (defaults are the production values; those that
``STEADYPAY_WEBHOOK_*`` sets come from the same constants in :mod:`steadypay.config`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from steadypay.config.contexts import (
    WEBHOOK_BACKOFF_BASE_S,
    WEBHOOK_BACKOFF_CAP_S,
    WEBHOOK_MAX_AGE_HOURS,
    WEBHOOK_ROTATION_WINDOW_HOURS,
    WEBHOOK_TIMEOUT_S,
)
from steadypay.notifications.urls import AddressPolicy, allowed_networks, parse_networks


@dataclass(frozen=True, slots=True)
class NotificationOptions:
    rotation_window_s: float = WEBHOOK_ROTATION_WINDOW_HOURS * 3600
    """After a secret rotation, deliveries are signed with the old secret too this long."""
    max_age_s: float = WEBHOOK_MAX_AGE_HOURS * 3600
    """A delivery is retried until this long after the event was created, then ``failed``."""
    delivery_timeout_s: float = WEBHOOK_TIMEOUT_S
    """Deadline of one POST to a webhook endpoint (connect, send, answer)."""
    backoff_base_s: float = WEBHOOK_BACKOFF_BASE_S
    backoff_cap_s: float = WEBHOOK_BACKOFF_CAP_S
    lease_s: float = 30.0
    """How long a claimed delivery is reserved for the worker that claimed it."""
    batch_size: int = 50
    concurrency: int = 16
    """Webhook POSTs in flight at once, per process."""
    poll_interval_s: float = 1.0
    """Idle wait between claims (a new event wakes the worker at once)."""
    allow_private_urls: bool | None = None
    """Registering endpoints on loopback/private addresses and plain http. None: allowed except
    when STEADYPAY_ENV=production."""
    allowed_networks: tuple[str, ...] | None = None
    """CIDRs deliveries may connect to despite the SSRF guard (``STEADYPAY_WEBHOOK_ALLOWED_
    NETWORKS``). None: loopback where private URLs are allowed (development, tests), else
    none."""
    pool_max_size: int = 10

    def __post_init__(self) -> None:
        if self.lease_s <= self.delivery_timeout_s + 1:
            raise ValueError("lease_s must exceed delivery_timeout_s by more than a second")
        if min(self.batch_size, self.concurrency, self.pool_max_size) < 1:
            raise ValueError("batch_size, concurrency and pool_max_size must be at least 1")
        if min(self.rotation_window_s, self.max_age_s, self.poll_interval_s) <= 0:
            raise ValueError("windows and intervals must be positive")
        parse_networks(self.allowed_networks or ())

    def deployed(
        self, *, production: bool, allowed_networks: Sequence[str] | None
    ) -> NotificationOptions:
        """These options with what was left to the deployment decided: private URLs allowed
        unless ``production``, and the delivery allow-list ``allowed_networks`` (from the
        settings) unless set here."""
        allow_private = (
            self.allow_private_urls if self.allow_private_urls is not None else not production
        )
        networks = self.allowed_networks
        if networks is None and allowed_networks is not None:
            networks = tuple(allowed_networks)
        return replace(self, allow_private_urls=allow_private, allowed_networks=networks)

    @property
    def delivery_policy(self) -> AddressPolicy:
        """Which addresses deliveries may connect to (undecided options: no private one)."""
        return AddressPolicy.of(
            allowed_networks(self.allowed_networks, production=not self.allow_private_urls)
        )

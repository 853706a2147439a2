"""What the payment API's routes are given: the long-lived objects of one API process.

The composition root (:func:`steadypay.bootstrap.api.build`) builds it from ``Settings``;
routes reach it through :data:`steadypay.api.deps.ContainerDep` and ask its services, never
a pool or a repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.faults import FaultInjector
from steadypay.faults.control import ChaosControl
from steadypay.http.ratelimit import RateLimits
from steadypay.identity.service import Identity
from steadypay.ledger.service import Ledger
from steadypay.ledger.wallets import Wallets
from steadypay.monitor.history import MonitorHistory
from steadypay.observability.slo import SloReports
from steadypay.outbox.service import OutboxAdmin
from steadypay.payments.service import Payments
from steadypay.resilience.registry import Dependencies


@dataclass(slots=True)
class Container:
    settings: Settings
    db: DatabaseRouter
    identity: Identity
    wallets: Wallets
    ledger: Ledger
    payments: Payments
    dependencies: Dependencies
    faults: FaultInjector
    chaos: ChaosControl
    outbox: OutboxAdmin
    slo: SloReports
    monitor_history: MonitorHistory
    rate_limits: RateLimits

    async def close(self) -> None:
        await self.dependencies.aclose()
        await self.rate_limits.aclose()
        await self.db.close()

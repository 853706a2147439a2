"""The composition roots: one per process, each building its long-lived objects from one
``Settings`` and wiring them (cosmicpython's ``bootstrap``).

- :mod:`.api` — the payment API (container, readiness, app, jobs)
- :mod:`.fraud` — the fraud service
- :mod:`.notifications` — the notification service
- :mod:`.relay` — the outbox relay
- :mod:`.monitor` — the health monitor
- :mod:`.tools` — CLI commands that touch the database (migrate, ledger check)
- :mod:`.backup` — the backup commands' view of the ledger (snapshot, totals, audit)
- :mod:`.common` — what they share (pools, dependency clients, Redis, logging, lifespan)

Nothing outside this package opens a pool or a client or reads the environment; hooks such as
the fault injector are created here and handed down as :class:`steadypay.hooks.FaultHook`.
"""

from steadypay.api.container import Container
from steadypay.bootstrap.api import build, create_app
from steadypay.bootstrap.common import (
    build_dependencies,
    configure_logging,
    freeze_startup_objects,
    open_database,
    pool_options,
)

__all__ = [
    "Container",
    "build",
    "build_dependencies",
    "configure_logging",
    "create_app",
    "freeze_startup_objects",
    "open_database",
    "pool_options",
]

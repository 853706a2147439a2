"""The use cases behind ``/v1/admin/chaos``: what is in force, and switching faults on or off
for every process (stored in PostgreSQL, followed by each process within a second)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.errors import ChaosForbidden
from steadypay.faults import runtime
from steadypay.faults.injector import ChaosConfig, FaultInjector, FaultRule


class ChaosControl:
    def __init__(self, db: DatabaseRouter, settings: Settings, injector: FaultInjector) -> None:
        self._db = db
        self._settings = settings
        self.injector = injector

    @property
    def allowed(self) -> bool:
        return self.injector.allowed

    async def current(self) -> tuple[ChaosConfig, str]:
        """The configuration in force and where it comes from (``runtime`` or ``startup``)."""
        stored = await runtime.load(self._db)
        config = runtime.effective(stored, runtime.startup_config(self._settings))
        return config, "runtime" if config is stored else "startup"

    async def set(
        self,
        *,
        enabled: bool,
        rules: Sequence[FaultRule],
        seed: int | None,
        duration_s: float,
        who: str,
    ) -> ChaosConfig:
        """Store the faults every process follows until ``duration_s`` has passed; this
        process follows at once."""
        if enabled and not runtime.allowed(self._settings):
            raise ChaosForbidden()
        config = ChaosConfig(
            enabled=enabled,
            rules=tuple(rules),
            seed=seed,
            expires_at=datetime.now(UTC) + timedelta(seconds=duration_s),
        )
        if not enabled:
            self.injector.configure(config)  # off here first, so this process's store is not failed
        await runtime.store(self._db, config, who)
        self.injector.configure(config)  # this process at once; the others within a second
        return config

"""The monitor loop: one round per interval, a decision per round, a failover when warranted.

A round (:meth:`Monitor.run_round`) is: refresh the leader lease, run every check at once
(each under its own timeout), feed healthy/failed to the :class:`DecisionMachine`, and — when it
wants a failover — act if this monitor is the leader and the failover gate is open. Any
exception anywhere in the evaluation is a failed round (the seed counted it but looped on
without ever reaching its threshold test). Every round is recorded in ``monitor.rounds``, and
nothing but cancellation escapes :meth:`run_round`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.monitor import metrics
from steadypay.monitor import repository as repo
from steadypay.monitor.actions import (
    ActionResult,
    CommandAction,
    FailoverAction,
    FailoverRequest,
    LogOnlyAction,
    WebhookAction,
)
from steadypay.monitor.checks import NamedCheck, describe, run_checks
from steadypay.monitor.domain import (
    ComponentResult,
    Decision,
    DecisionMachine,
    Role,
    Status,
    Verdict,
    failure_reason,
    round_healthy,
)
from steadypay.monitor.lease import LeaderLease, LeaseState

log = structlog.get_logger(__name__)

NO_ACTION_NOTE = "failover_triggered (no action configured)"


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    monitor_id: str
    interval_s: float = 30.0
    failure_threshold: int = 3
    recovery_threshold: int = 2
    cooldown_s: float = 900.0
    retention_s: float = 7 * 86_400.0
    action_timeout_s: float = 60.0
    prune_every_s: float = 3_600.0


def build_action(settings: Settings, http: httpx.AsyncClient) -> FailoverAction:
    """The configured failover action: command, else webhook, else log only. (The
    disaster-recovery runbook, when it exists, is chosen here too.)"""
    if settings.monitor_failover_command:
        return CommandAction(settings.monitor_failover_command, settings.monitor_failover_timeout_s)
    if settings.monitor_failover_webhook:
        return WebhookAction(
            settings.monitor_failover_webhook, http, settings.monitor_failover_timeout_s
        )
    return LogOnlyAction()


@dataclass(slots=True)
class _Pending:
    """A failover acted on while the database was unreachable, to record when it is back."""

    reason: str
    action: str
    result: ActionResult
    triggered_at: datetime


@dataclass(slots=True)
class Monitor:
    config: MonitorConfig
    checks: Sequence[NamedCheck]
    db: DatabaseRouter
    lease: LeaderLease
    action: FailoverAction
    clock: Callable[[], float] = time.monotonic
    machine: DecisionMachine = field(init=False)
    _local_block_until: float = field(init=False, default=float("-inf"))
    _unrecorded: list[_Pending] = field(init=False, default_factory=list)
    _last_prune: float = field(init=False, default=float("-inf"))
    _lease: LeaseState = field(init=False, default=LeaseState(leader=False, verified=False))

    def __post_init__(self) -> None:
        self.machine = DecisionMachine(
            self.config.failure_threshold, self.config.recovery_threshold
        )

    # --- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every ``interval_s`` (start to start) until ``stop`` is set; a round in
        flight when it is set is cancelled."""
        next_at = self.clock()
        try:
            while not stop.is_set():
                await self._round_unless_stopped(stop)
                if stop.is_set():
                    break
                next_at = max(next_at + self.config.interval_s, self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=next_at - self.clock())
        finally:
            metrics.IS_LEADER.set(0)
            await self.lease.release()

    async def _round_unless_stopped(self, stop: asyncio.Event) -> None:
        round_task = asyncio.create_task(self.run_round())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({round_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            round_task.cancel()  # no effect on a finished round
            try:
                await round_task
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are cancelled ourselves, not only the round
            except Exception:  # run_round records its own errors; this is a last resort
                log.exception("monitor_round_crashed")

    # --- one round -----------------------------------------------------------------------

    async def run_round(self) -> repo.RoundRecord:
        started_at = datetime.now(UTC)
        lease = self._lease  # if refreshing it fails, the role we last knew
        try:
            lease = self._lease = await self.lease.refresh()
            results = await run_checks(self.checks)
            healthy = round_healthy(results)
            reason = failure_reason(results)
            components = {r.component: r.to_json() for r in results}
        except Exception as exc:
            log.exception("monitor_round_error")
            healthy = False
            reason = f"round error: {describe(exc)}"
            components = {
                "round": ComponentResult("round", Status.FAIL, 0.0, describe(exc)).to_json()
            }
        metrics.IS_LEADER.set(1 if lease.leader else 0)
        metrics.ROUNDS.labels("healthy" if healthy else "failed").inc()
        verdict = self.machine.observe(healthy)
        decision, failover_id = verdict.decision, None
        if verdict.wants_failover:
            if lease.leader:
                decision, failover_id, reason = await self._failover(reason, verdict, components)
            else:
                decision = Decision.FAILOVER_DEFERRED
                reason += "; failover threshold reached (follower: the leader acts)"
        metrics.CONSECUTIVE_FAILURES.set(self.machine.failures)
        record = repo.RoundRecord(
            monitor_id=self.config.monitor_id,
            role=(Role.LEADER if lease.leader else Role.FOLLOWER).value,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            healthy=healthy,
            components=components,
            consecutive_failures=verdict.consecutive_failures,
            decision=decision.value,
            reason=reason[:2000],
            failover_id=failover_id,
        )
        log.info(
            "monitor_round",
            role=record.role,
            healthy=healthy,
            decision=record.decision,
            consecutive_failures=record.consecutive_failures,
            reason=reason if not healthy or decision is not Decision.HEALTHY else None,
        )
        round_id = await self._record(record, leader=lease.leader)
        return dataclasses.replace(record, id=round_id)

    async def _record(self, record: repo.RoundRecord, *, leader: bool) -> int | None:
        """Store the round (and prune old ones now and then); None if the database is down."""
        try:
            await self._flush_unrecorded()
            round_id = await repo.insert_round(self.db, record)
        except Exception as exc:  # noqa: BLE001 - the database may be the thing that is down
            log.warning("monitor_round_not_recorded", error=describe(exc))
            return None
        if leader and self.clock() - self._last_prune >= self.config.prune_every_s:
            self._last_prune = self.clock()
            try:
                pruned = await repo.prune_rounds(self.db, self.config.retention_s)
            except Exception as exc:  # noqa: BLE001 - tried again at the next prune time
                log.warning("monitor_rounds_not_pruned", error=describe(exc))
            else:
                if pruned:
                    log.info("monitor_rounds_pruned", rounds=pruned)
        return round_id

    async def _flush_unrecorded(self) -> None:
        while self._unrecorded:
            pending = self._unrecorded[0]
            failover_id = await repo.insert_finished_failover(
                self.db,
                monitor_id=self.config.monitor_id,
                reason=pending.reason,
                action=pending.action,
                outcome=pending.result.outcome,
                detail=pending.result.detail | {"recorded_late": True},
                triggered_at=pending.triggered_at,
            )
            log.info("monitor_failover_recorded_late", failover_id=failover_id)
            self._unrecorded.pop(0)

    # --- failover ------------------------------------------------------------------------

    async def _failover(
        self, reason: str, verdict: Verdict, components: dict[str, Any]
    ) -> tuple[Decision, int | None, str]:
        """Open a failover unless the gate is closed, run the action, record the outcome."""
        triggered_at = datetime.now(UTC)
        try:
            opened, blocking = await repo.open_failover(
                self.db,
                monitor_id=self.config.monitor_id,
                reason=reason,
                action=self.action.name,
                cooldown_s=self.config.cooldown_s,
            )
        except Exception as exc:  # noqa: BLE001 - database down: decide from what we know
            log.warning("monitor_failover_gate_unreachable", error=describe(exc))
            opened = blocking = None
            if self.clock() < self._local_block_until:
                metrics.FAILOVERS.labels("suppressed").inc()
                return (
                    Decision.FAILOVER_SUPPRESSED,
                    None,
                    f"{reason}; an earlier failover of this monitor is in its cool-down",
                )
        if blocking is not None:
            metrics.FAILOVERS.labels("suppressed").inc()
            until = blocking.blocks_until(self.config.cooldown_s)
            when = until.isoformat() if until else "?"
            return (
                Decision.FAILOVER_SUPPRESSED,
                blocking.id,
                f"{reason}; failover {blocking.id} awaits an ack or its cool-down (until {when})",
            )
        failover_id = opened.id if opened is not None else 0
        request = FailoverRequest(
            failover_id=failover_id,
            monitor_id=self.config.monitor_id,
            reason=reason,
            consecutive_failures=verdict.consecutive_failures,
            triggered_at=opened.triggered_at if opened is not None else triggered_at,
            components=components,
        )
        log.critical(
            "monitor_failover", failover_id=failover_id, action=self.action.name, reason=reason
        )
        result = await self._act(request)
        self.machine.failover_done()
        self._local_block_until = self.clock() + self.config.cooldown_s
        metrics.FAILOVERS.labels(result.outcome).inc()
        if opened is None:
            self._unrecorded.append(_Pending(reason, self.action.name, result, triggered_at))
        else:
            try:
                await repo.finish_failover(self.db, opened.id, result.outcome, result.detail)
            except Exception as exc:  # noqa: BLE001 - recorded as running; the log says more
                log.warning("monitor_failover_outcome_not_recorded", error=describe(exc))
        note = (
            NO_ACTION_NOTE
            if result.outcome == "logged"
            else f"failover via {self.action.name}: {result.outcome}"
        )
        return Decision.FAILOVER_TRIGGERED, opened.id if opened else None, f"{reason}; {note}"

    async def _act(self, request: FailoverRequest) -> ActionResult:
        try:
            async with asyncio.timeout(self.config.action_timeout_s + 5):
                return await self.action(request)
        except Exception as exc:
            log.exception("monitor_failover_action_error")
            return ActionResult("failed", {"error": describe(exc)})

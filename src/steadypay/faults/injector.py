"""In-process fault injection: the seed's ``ChaosEngineering``, made safe and targeted.

Faults of the seed's four types (``database``, ``network``, ``service``, ``generic``) and
random latency are injected at three hooks:

- ``api``: the HTTP middleware of each service. Phase ``before``: the request never reaches its
  handler. Phase ``after``: the handler ran (the money moved) and its response is lost and
  replaced by the fault's error: the client sees a failure for something that happened, the
  case idempotency keys exist for. The target is a route template prefix (``/v1/transfers``).
- ``database``: acquiring a connection from the pool (target: the pool's name, e.g. ``api``).
- ``dependency``: each attempt of a :class:`ReliableServiceClient` call, before it is sent
  (target: the dependency's name, ``fraud`` or ``notifications``).

A fault raises the error the real failure would (``database`` → ``DatabaseUnavailable``,
``network`` → a timeout, ``service`` → ``ServiceUnavailable``, ``generic`` → an unexpected
exception, i.e. a 500), so the real error handling is what gets tested. Every injected fault is
logged (``chaos_fault_injected``), counted in ``steadypay_chaos_faults_injected_total`` and, at
the HTTP hook, marked in an ``X-Steadypay-Chaos`` response header: an injected error is never
mistaken for a real one.

Configuration: ``STEADYPAY_CHAOS_ENABLED`` + ``STEADYPAY_CHAOS_FAILURE_RATE`` (default 0.01, the
seed's) + ``STEADYPAY_CHAOS_LATENCY_MS`` at start, or at runtime ``PUT /v1/admin/chaos`` (stored
in PostgreSQL so every worker of every service follows it, with an expiry after which faults
switch themselves off). With ``STEADYPAY_ENV=production`` chaos refuses to turn on unless
``STEADYPAY_CHAOS_ALLOW_IN_PRODUCTION=true``. Draws come from a seeded generator
(``seed``), so a run's sequence of draws can be replayed (exactly, for one worker and one
request at a time).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from steadypay import errors
from steadypay.hooks import HookPoint

log = structlog.get_logger(__name__)

FaultType = Literal["database", "network", "service", "generic"]
Component = HookPoint
Phase = Literal["before", "after"]
FAULT_TYPES: tuple[FaultType, ...] = ("database", "network", "service", "generic")
CHAOS_HEADER = "X-Steadypay-Chaos"
CHAOS_NOTE = "steadypay-chaos:"
"""Every injected error carries this note (``exc.__notes__``), followed by its kind."""


def injected_kind(exc: BaseException) -> str | None:
    """The fault kind if ``exc`` was injected by chaos, else None."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(CHAOS_NOTE):
            return note.removeprefix(CHAOS_NOTE)
    return None


FAULTS_INJECTED = Counter(
    "steadypay_chaos_faults_injected_total",
    "Faults injected on purpose (chaos engineering), by hook, target and kind",
    ["component", "target", "kind"],
)

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class FaultRule(BaseModel):
    """Where and how often to inject. Unset ``component``/``target`` match everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: Component | None = None
    target: str | None = Field(
        default=None,
        max_length=200,
        description="api: a route template prefix; database: a pool name; dependency: a name",
    )
    types: tuple[FaultType, ...] = Field(default=FAULT_TYPES, min_length=1)
    failure_rate: Rate = 0.01
    latency_rate: Rate = 0.0
    latency_ms: tuple[Annotated[int, Field(ge=0, le=60_000)], ...] = Field(
        default=(100, 2000), min_length=2, max_length=2
    )
    phase: Phase = "before"

    @model_validator(mode="after")
    def _ordered(self) -> FaultRule:
        if self.latency_ms[0] > self.latency_ms[1]:
            raise ValueError("latency_ms must be [min, max] with min <= max")
        return self

    def matches(self, component: Component, target: str, phase: Phase) -> bool:
        if self.component is not None and self.component != component:
            return False
        if component == "api" and self.phase != phase:
            return False
        if self.target is None:
            return True
        return target.startswith(self.target) if component == "api" else target == self.target


class ChaosConfig(BaseModel):
    """The faults in force. ``expires_at`` switches them off by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    rules: tuple[FaultRule, ...] = Field(default=(), max_length=50)
    seed: int | None = None
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.enabled and (self.expires_at is None or now < self.expires_at)


class InjectedFault(Exception):
    """A ``generic`` fault: an unexpected exception, as a bug would raise."""


def fault_error(kind: FaultType, component: Component, target: str) -> Exception:
    """The error a real fault of this kind raises at this hook: at the database hook, what the
    pool raises when PostgreSQL fails; at the dependency hook, what the client raises for a
    failed call; at the HTTP hook, the seed's mapping. ``generic`` is always an unexpected
    exception (a 500)."""
    message = f"chaos: injected {kind} fault at {component}:{target}"
    if kind == "generic":
        return InjectedFault(message)
    if component == "database":
        return errors.DatabaseUnavailable(message)
    if component == "dependency":
        if kind == "network":
            return errors.DependencyTimeout(message, dependency=target)
        return errors.DependencyFailure(message, dependency=target, status_code=503)
    if kind == "database":
        return errors.DatabaseUnavailable(message)
    if kind == "network":
        return errors.DependencyTimeout(message, dependency=target)
    return errors.ServiceUnavailable(message)


class FaultInjector:
    """A process's injector (a :class:`steadypay.hooks.FaultHook`): its composition root makes
    one and hands it to every hook. Hooks call :meth:`inject`; the config is swapped whole."""

    def __init__(self, config: ChaosConfig | None = None, *, allowed: bool = True) -> None:
        self.allowed = allowed
        self._config = ChaosConfig()
        self._random = random.Random()  # noqa: S311 -- replayable draws, not security
        self.configure(config or ChaosConfig())

    @property
    def config(self) -> ChaosConfig:
        return self._config

    def configure(self, config: ChaosConfig) -> None:
        if config.enabled and not self.allowed:
            raise errors.ChaosForbidden()
        if config != self._config:
            self._random.seed(config.seed)
            if config.enabled:
                log.warning("chaos_configured", config=config.model_dump(mode="json"))
        self._config = config

    def active_rules(self, component: Component, target: str, phase: Phase) -> list[FaultRule]:
        config = self._config
        if not config.enabled or not config.active(datetime.now(UTC)):
            return []
        return [r for r in config.rules if r.matches(component, target, phase)]

    async def inject(self, component: Component, target: str, phase: Phase = "before") -> None:
        """Maybe sleep, maybe raise, as the rules matching this hook say."""
        rules = self.active_rules(component, target, phase)
        for rule in rules:
            # metric label: a path may hold ids; the rule's own prefix is bounded
            label = target if component != "api" else (rule.target or "*")
            if rule.latency_rate and self._random.random() < rule.latency_rate:
                delay_ms = self._random.uniform(*rule.latency_ms)
                self._record(component, label, "latency", delay_ms=round(delay_ms, 1))
                await asyncio.sleep(delay_ms / 1000)
            if rule.failure_rate and self._random.random() < rule.failure_rate:
                kind = self._random.choice(rule.types)
                self._record(component, label, kind, phase=phase, path=target)
                error = fault_error(kind, component, target)
                error.add_note(CHAOS_NOTE + kind)
                raise error

    def _record(self, component: str, target: str, kind: str, **extra: Any) -> None:
        FAULTS_INJECTED.labels(component, target, kind).inc()
        log.warning("chaos_fault_injected", component=component, target=target, kind=kind, **extra)


P = ParamSpec("P")
R = TypeVar("R")


def chaos(
    target: str, injector: FaultInjector, component: Component = "database"
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """The seed's decorator: inject before each call of an async function."""

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await injector.inject(component, target)
            return await func(*args, **kwargs)

        return wrapper

    return decorate

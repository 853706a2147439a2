"""Hooks that lower layers call and higher layers implement, as small protocols.

The database pool and the dependency client call a :class:`FaultHook` before each connection
and each attempt. The fault injector (:mod:`steadypay.faults`) implements it; a process's
composition root (:mod:`steadypay.bootstrap`) creates one injector and hands it to both, so
infrastructure never imports the chaos machinery. :data:`NO_FAULTS` is the hook of a process
(or a test) that injects nothing.
"""

from __future__ import annotations

from typing import Literal, Protocol

HookPoint = Literal["api", "database", "dependency"]
"""Where a fault can be injected: the HTTP middleware, a pool acquire, a dependency attempt."""


class FaultHook(Protocol):
    """Called at a hook point; may sleep or raise the error a real failure would."""

    async def inject(self, component: HookPoint, target: str) -> None: ...


class _NoFaults:
    __slots__ = ()

    async def inject(self, component: HookPoint, target: str) -> None:
        return None


NO_FAULTS: FaultHook = _NoFaults()

"""In-process fault injection (chaos engineering inside the services).

An :class:`FaultInjector` per process implements :class:`steadypay.hooks.FaultHook`; the
composition root hands it to the pool, the dependency clients and the HTTP middleware, and
keeps it following the stored configuration (:func:`following`). The experiments that use it
from outside are the harness in :mod:`steadypay.chaos`.
"""

from steadypay.faults.injector import (
    CHAOS_HEADER,
    FAULT_TYPES,
    ChaosConfig,
    FaultInjector,
    FaultRule,
    InjectedFault,
    chaos,
    injected_kind,
)
from steadypay.faults.middleware import ChaosMiddleware
from steadypay.faults.runtime import following

__all__ = [
    "CHAOS_HEADER",
    "FAULT_TYPES",
    "ChaosConfig",
    "ChaosMiddleware",
    "FaultInjector",
    "FaultRule",
    "InjectedFault",
    "chaos",
    "following",
    "injected_kind",
]

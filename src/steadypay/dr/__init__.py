"""Regional disaster recovery: the failover runbook as code (:mod:`~steadypay.dr.runbook`).

Above the composition roots (it starts steadypay's processes in the new region), below the
CLI and the harnesses (``steadypay drill dr`` drives it, :mod:`steadypay.chaos.dr_drill`).
The backups it restores from are :mod:`steadypay.backup`'s; docs/dr.md is the operator's page.
"""

from steadypay.dr.runbook import (
    STEPS,
    Dns,
    FailoverPlan,
    FailoverReport,
    Runbook,
    RunbookError,
    canary_payment,
    stop_region,
)

__all__ = [
    "STEPS",
    "Dns",
    "FailoverPlan",
    "FailoverReport",
    "Runbook",
    "RunbookError",
    "canary_payment",
    "stop_region",
]

"""The health monitor (``steadypay monitor``): rounds of checks, a decision state machine with
hysteresis, a leader lease so only one monitor acts, and a pluggable failover action.

- :mod:`.domain`     results, the decision state machine (pure, no I/O)
- :mod:`.checks`     API health, database, external dependencies; running a round
- :mod:`.canary`     the synthetic payment: a tiny transfer between two canary wallets and back
- :mod:`.lease`      the leader lease (a PostgreSQL session advisory lock)
- :mod:`.actions`    what a failover does: a command, a webhook, or only a log line
- :mod:`.repository` monitor.rounds, monitor.failovers, monitor.canary
- :mod:`.service`    the loop that ties them together
- :mod:`.metrics`    its Prometheus metrics

- :mod:`.history`    the use cases behind ``/v1/admin/health`` (rounds, state, acknowledging)

See docs/monitor.md.

Offered to other packages (its composition root, :mod:`steadypay.bootstrap.monitor`, the API's
admin routes, tests): the names below. The admin routes read ``monitor.repository`` directly.
"""

from steadypay.monitor.actions import (
    ActionResult,
    CommandAction,
    FailoverAction,
    FailoverRequest,
    LogOnlyAction,
    WebhookAction,
)
from steadypay.monitor.canary import Canary, canary_email, canary_key
from steadypay.monitor.checks import (
    ApiHealthCheck,
    DatabaseCheck,
    DependenciesCheck,
    Dependency,
    NamedCheck,
    run_checks,
)
from steadypay.monitor.domain import (
    ComponentResult,
    Decision,
    DecisionMachine,
    Status,
    failure_reason,
    round_healthy,
)
from steadypay.monitor.history import MonitorHistory
from steadypay.monitor.lease import LeaderLease
from steadypay.monitor.service import Monitor, MonitorConfig, build_action

__all__ = [
    "ActionResult",
    "ApiHealthCheck",
    "Canary",
    "CommandAction",
    "ComponentResult",
    "DatabaseCheck",
    "Decision",
    "DecisionMachine",
    "DependenciesCheck",
    "Dependency",
    "FailoverAction",
    "FailoverRequest",
    "LeaderLease",
    "LogOnlyAction",
    "Monitor",
    "MonitorConfig",
    "MonitorHistory",
    "NamedCheck",
    "Status",
    "WebhookAction",
    "build_action",
    "canary_email",
    "canary_key",
    "failure_reason",
    "round_healthy",
    "run_checks",
]

"""The double-entry ledger: wallets (accounts), transfers, entries, and its audit.

- :mod:`~steadypay.ledger.domain` — transfer commands, accounts, postings and holds; the posting
  rules (:func:`apply_batch`, :func:`settle_hold`). Plain Python, no I/O.
- :mod:`~steadypay.ledger.service` — :class:`Ledger`, whose :meth:`Ledger.execute` is the write
  path's one primitive (idempotency claim, postings and outbox event in one transaction).
- :mod:`~steadypay.ledger.group_commit` — concurrent ledger calls sharing one transaction.
- :mod:`~steadypay.ledger.wallets` — :class:`Wallets`: open a wallet, read it, its entries.
- :mod:`~steadypay.ledger.views` — transfers as the outside world sees them (API, outbox).
- :mod:`~steadypay.ledger.jobs` — background jobs: voiding holds whose review time ran out.
- :mod:`~steadypay.ledger.gauges` — ledger gauges read at scrape time; recording a ledger check.
- :mod:`~steadypay.ledger.audit` — ``steadypay ledger check``: the invariants, audited in SQL.
- :mod:`~steadypay.ledger.repository` — the ledger's SQL (private to this package).

Offered to other packages: the names below. The audit itself is
``steadypay.ledger.audit.audit`` (not re-exported here: the name would hide the module).
"""

from steadypay.ledger.audit import AuditReport, report_json
from steadypay.ledger.domain import (
    Account,
    AccountKind,
    FailureCode,
    HoldAction,
    Posting,
    Risk,
    Transfer,
    TransferCommand,
    TransferStatus,
    TransferType,
    apply_batch,
    settle_hold,
)
from steadypay.ledger.gauges import record_ledger_check, refresh_state_gauges
from steadypay.ledger.jobs import expire_holds_forever
from steadypay.ledger.service import (
    BatchResult,
    Executed,
    KeyReused,
    Ledger,
    Outcome,
    Renderer,
    Replayed,
    RetryPolicy,
    WriteRequest,
)
from steadypay.ledger.views import transfer_json
from steadypay.ledger.wallets import Entry, Parties, Wallet, Wallets

__all__ = [
    "Account",
    "AccountKind",
    "AuditReport",
    "BatchResult",
    "Entry",
    "Executed",
    "FailureCode",
    "HoldAction",
    "KeyReused",
    "Ledger",
    "Outcome",
    "Parties",
    "Posting",
    "Renderer",
    "Replayed",
    "RetryPolicy",
    "Risk",
    "Transfer",
    "TransferCommand",
    "TransferStatus",
    "TransferType",
    "Wallet",
    "Wallets",
    "WriteRequest",
    "apply_batch",
    "expire_holds_forever",
    "record_ledger_check",
    "refresh_state_gauges",
    "report_json",
    "settle_hold",
    "transfer_json",
]

"""Money-moving use cases: deposits, withdrawals and transfers as the API offers them.

- :mod:`~steadypay.payments.service` — :class:`Payments`: deposits, withdrawals, transfers,
  batches and holds; who may ask, and the one path into the ledger.
- :mod:`~steadypay.payments.queries` — read use cases (wallets, entries, transfers, the review
  queue) as a principal may see them.
- :mod:`~steadypay.payments.risk` — judging a transfer before money moves: the fraud service
  (:class:`RiskAssessor`), or the seed's rules in-process (:class:`RiskPolicy`,
  :class:`DailyTotals`).

Offered to other packages: the names below (the payment API's routes and composition root).
"""

from steadypay.payments.risk import DailyTotals, RiskAssessor, RiskPolicy
from steadypay.payments.service import MoneyMovement, Payments

__all__ = [
    "DailyTotals",
    "MoneyMovement",
    "Payments",
    "RiskAssessor",
    "RiskPolicy",
]

"""`steadypay ledger check`: an independent audit of the ledger's invariants, in SQL.

Each check is a query that returns the rows violating one invariant; an empty result means the
invariant holds. The audit reads one consistent snapshot (REPEATABLE READ, READ ONLY).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

SAMPLE = 10

CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "currency_sums_to_zero",
        "every currency's accounts, system accounts included, sum to exactly zero",
        """
        SELECT currency, sum(balance)::text AS total FROM wallets
        GROUP BY currency HAVING sum(balance) <> 0
        """,
    ),
    (
        "wallets_equal_deposits_minus_withdrawals",
        "per currency, user wallets hold exactly completed deposits minus withdrawals",
        """
        WITH held AS (
            SELECT currency, sum(balance) AS total FROM wallets WHERE kind = 'user'
            GROUP BY currency
        ), flows AS (
            SELECT currency,
                   sum(CASE type WHEN 'deposit' THEN amount ELSE -amount END) AS net
            FROM transfers WHERE status = 'completed' AND type IN ('deposit', 'withdrawal')
            GROUP BY currency
        )
        SELECT coalesce(h.currency, f.currency) AS currency,
               coalesce(h.total, 0)::text AS wallets, coalesce(f.net, 0)::text AS net_flows
        FROM held h FULL JOIN flows f ON f.currency = h.currency
        WHERE coalesce(h.total, 0) <> coalesce(f.net, 0)
        """,
    ),
    (
        "balance_equals_entries",
        "every wallet's balance equals the sum of its entries",
        """
        SELECT w.id, w.balance::text, coalesce(e.total, 0)::text AS entries_total
        FROM wallets w
        LEFT JOIN (SELECT wallet_id, sum(amount) AS total FROM entries GROUP BY wallet_id) e
               ON e.wallet_id = w.id
        WHERE w.balance <> coalesce(e.total, 0)
        """,
    ),
    (
        "entries_chain",
        "each wallet's entries chain: balance_before is the previous entry's balance_after "
        "(0 for the first) and the last balance_after is the wallet's balance",
        """
        WITH chained AS (
            SELECT wallet_id, id, balance_before, balance_after,
                   lag(balance_after, 1, 0::bigint) OVER w AS previous_after,
                   row_number() OVER (PARTITION BY wallet_id ORDER BY id DESC) AS from_end
            FROM entries WINDOW w AS (PARTITION BY wallet_id ORDER BY id)
        )
        SELECT c.wallet_id, c.id AS entry_id, c.balance_before::text,
               c.previous_after::text AS expected_before
        FROM chained c WHERE c.balance_before <> c.previous_after
        UNION ALL
        SELECT c.wallet_id, c.id, c.balance_after::text, w.balance::text
        FROM chained c JOIN wallets w ON w.id = c.wallet_id
        WHERE c.from_end = 1 AND c.balance_after <> w.balance
        """,
    ),
    (
        "available_equals_balance_minus_holds",
        "every user wallet's available balance is its balance minus its open review holds",
        """
        SELECT w.id, w.balance::text, w.available_balance::text,
               coalesce(h.held, 0)::text AS open_holds
        FROM wallets w
        LEFT JOIN (SELECT from_wallet_id, sum(amount) AS held FROM transfers
                   WHERE status = 'pending_review' GROUP BY from_wallet_id) h
               ON h.from_wallet_id = w.id
        WHERE w.kind = 'user' AND w.available_balance <> w.balance - coalesce(h.held, 0)
        """,
    ),
    (
        "no_negative_user_balance",
        "no user wallet has a negative balance or available balance",
        """
        SELECT id, balance::text, available_balance::text FROM wallets
        WHERE kind = 'user' AND (balance < 0 OR available_balance < 0)
        """,
    ),
    (
        "completed_transfers_balanced",
        "every completed transfer has postings summing to zero, debiting and crediting the "
        "wallets it names, for its amount",
        """
        SELECT t.id, t.type, count(e.id) AS postings, coalesce(sum(e.amount), 0)::text AS total
        FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id
        WHERE t.status = 'completed'
        GROUP BY t.id
        HAVING count(e.id) < 2 OR coalesce(sum(e.amount), 0) <> 0
            OR coalesce(sum(e.amount) FILTER (WHERE e.amount > 0), 0) <> t.amount
            OR (t.from_wallet_id IS NOT NULL AND NOT bool_or(
                    e.wallet_id = t.from_wallet_id AND e.amount = -t.amount))
            OR (t.to_wallet_id IS NOT NULL AND NOT bool_or(
                    e.wallet_id = t.to_wallet_id AND e.amount = t.amount))
        """,
    ),
    (
        "unposted_transfers_moved_nothing",
        "a failed, held, rejected or expired transfer has no postings",
        """
        SELECT t.id, t.status, t.failure_code FROM transfers t
        WHERE t.status IN ('failed', 'pending_review', 'rejected', 'expired')
          AND EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = t.id)
        """,
    ),
)


@dataclass(slots=True)
class CheckResult:
    name: str
    description: str
    violations: int
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violations == 0


@dataclass(slots=True)
class AuditReport:
    checks: list[CheckResult]
    wallets: int
    transfers: int
    entries: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


async def audit(conn: asyncpg.Connection) -> AuditReport:
    results: list[CheckResult] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for name, description, query in CHECKS:
            rows = await conn.fetch(f"SELECT * FROM ({query}) AS v LIMIT {SAMPLE + 1}")
            count = len(rows)
            if count > SAMPLE:
                count = await conn.fetchval(f"SELECT count(*) FROM ({query}) AS v")
            results.append(CheckResult(name, description, count, [dict(r) for r in rows[:SAMPLE]]))
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM wallets) AS w, (SELECT count(*) FROM transfers) AS t,"
            " (SELECT count(*) FROM entries) AS e"
        )
    assert counts is not None
    return AuditReport(results, counts["w"], counts["t"], counts["e"])


def report_json(report: AuditReport) -> dict[str, object]:
    """The report as JSON: what `steadypay ledger check --json` prints and what is recorded."""
    return {
        "ok": report.ok,
        "wallets": report.wallets,
        "transfers": report.transfers,
        "entries": report.entries,
        "checks": [
            {"name": c.name, "ok": c.ok, "violations": c.violations, "sample": c.sample}
            for c in report.checks
        ],
    }

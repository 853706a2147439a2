"""The composition root of CLI commands that touch the database themselves (``steadypay
ledger check``): one connection for one job, closed after it."""

from __future__ import annotations

import sys

import asyncpg

from steadypay.ledger.audit import AuditReport, audit, report_json
from steadypay.ledger.gauges import record_ledger_check


async def audit_and_record(url: str) -> AuditReport:
    """Audit the ledger at ``url``, then record the outcome (the
    ``steadypay_ledger_check_violations`` gauge reads the last one)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        report = await audit(conn)
        violations = sum(c.violations for c in report.checks)
        if await record_ledger_check(conn, violations, report_json(report)) is None:
            print(
                "warning: the check was not recorded (no observability.ledger_checks table: "
                "run `steadypay migrate`)",
                file=sys.stderr,
            )
        return report
    finally:
        await conn.close()

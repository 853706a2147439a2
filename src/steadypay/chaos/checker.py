"""The money-safety checker: reads a bank run's history and the ledger, and lists every way in
which money was created, destroyed, lost or doubled.

Jepsen's bank workload checks that totals are conserved; that cannot see an acknowledged
transfer that vanished, or one that happened twice between the same wallets in opposite
directions. So besides the totals, the checker keeps a *model*: every wallet's balance as the
history says it must be (opening deposit, plus and minus every transfer the client was told
completed, plus those whose outcome was unknown and turned out to exist), and compares it with
the ledger, cent for cent.

Checks (each violation names the operations involved):

- ``conservation``: the run's wallets hold exactly what was deposited into them, and the ledger
  audit's per-currency checks hold (user wallets = deposits - withdrawals; system accounts sum
  to minus that);
- ``no_negative_balance``;
- ``acknowledged_exist_once``: every 2xx-acknowledged transfer exists exactly once in the ledger,
  with the acknowledged id, amount, parties and status;
- ``one_effect_per_key``: no idempotency key has more than one transfer; concurrent duplicates
  were told the same transfer id;
- ``reuse_refused``: a key reused with a different body was refused (422
  ``idempotency_key_reuse``) and moved no money;
- ``unknown_resolved``: every operation that ended unknown now either exists once or never
  happened, and a retry with its key gets a definite answer consistent with the ledger;
- ``model_balances``: every wallet's balance equals the model's, and the ledger holds no
  transfer between the run's wallets that no operation asked for;
- ``ledger_audit``: `steadypay ledger check` (balances equal entries, entries chain without
  gaps, postings balance, ...);
- ``notified``: every completed transfer's event reached the notification service within a
  bound (when it is part of the run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from steadypay.chaos.bank import BankClient, BankRun, Op
from steadypay.ledger.audit import audit
from steadypay.money import format_amount, get_currency, parse_amount

CONSERVATION_AUDITS = ("currency_sums_to_zero", "wallets_equal_deposits_minus_withdrawals")
CHECKS = (
    "conservation",
    "no_negative_balance",
    "acknowledged_exist_once",
    "one_effect_per_key",
    "reuse_refused",
    "unknown_resolved",
    "model_balances",
    "ledger_audit",
    "notified",
)


@dataclass(slots=True)
class Violation:
    check: str
    message: str
    ops: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    counts: dict[str, int]
    violations: list[Violation]
    checked: list[str]
    skipped: dict[str, str]
    resolutions: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.violations

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "resolutions": self.resolutions,
            "checks": {
                name: (
                    "skipped: " + self.skipped[name]
                    if name in self.skipped
                    else sum(v.check == name for v in self.violations)
                )
                for name in CHECKS
            },
            "violations": [
                {"check": v.check, "message": v.message, "ops": v.ops} for v in self.violations
            ],
        }


@dataclass(slots=True)
class LedgerRow:
    id: str
    status: str
    from_wallet: str | None
    to_wallet: str | None
    amount_minor: int
    description: str | None


async def ledger_rows(conn: asyncpg.Connection, wallets: list[str]) -> list[LedgerRow]:
    """Every transfer touching the run's wallets (deposits included)."""
    rows = await conn.fetch(
        """
        SELECT id::text, status, from_wallet_id::text AS f, to_wallet_id::text AS t, amount,
               description
        FROM transfers
        WHERE from_wallet_id = ANY($1::uuid[]) OR to_wallet_id = ANY($1::uuid[])
        """,
        wallets,
    )
    return [
        LedgerRow(r["id"], r["status"], r["f"], r["t"], int(r["amount"]), r["description"])
        for r in rows
    ]


def summarize(ops: list[Op]) -> dict[str, int]:
    counts = Counter(op.outcome for op in ops)
    return {
        "attempted": len(ops),
        "acknowledged": counts["ok"],
        "failed": counts["failed"],
        "unknown": counts["unknown"],
        "duplicates": sum(op.kind == "duplicate" for op in ops),
        "reuses": sum(op.kind == "reuse" for op in ops),
    }


async def resolve_unknowns(
    client: BankClient, run: BankRun, give_up_s: float
) -> tuple[list[Op], list[Op]]:
    """Retry every unknown operation with its own key and body until a definite answer.

    Returns (retries, still unknown). A retry of a transfer that never happened performs it
    now; the model takes the retry's outcome, so this is safe either way."""
    unknown = [op for op in run.ops if op.outcome == "unknown" and op.kind != "reuse"]
    retries: list[Op] = []
    seen: set[str] = set()
    for op in unknown:
        if op.key in seen:
            continue
        seen.add(op.key)
        retry = dataclasses.replace(
            op, attempts=0, outcome="unknown", status=None, code=None, transfer_id=None, errors=[]
        )
        amount = format_amount(op.amount_minor, run.setup.currency)
        await client.attempt_transfer(retry, amount, give_up_s)
        retries.append(retry)
    return retries, [r for r in retries if r.outcome == "unknown"]


async def check(
    client: BankClient,
    run: BankRun,
    conn: asyncpg.Connection,
    *,
    notifications: bool = False,
    notify_within_s: float = 30.0,
    resolve_give_up_s: float = 30.0,
) -> Verdict:
    violations: list[Violation] = []
    skipped: dict[str, str] = {}
    ops = run.ops
    setup = run.setup
    currency = setup.currency
    prefix = "bank:"

    def violate(name: str, message: str, involved: list[Op] | None = None) -> None:
        violations.append(Violation(name, message, [op.op for op in involved or []]))

    before = {
        (r.description or "").removeprefix(prefix) for r in await ledger_rows(conn, setup.wallets)
    }
    retries, unresolved = await resolve_unknowns(client, run, resolve_give_up_s)
    for op in unresolved:
        violate("unknown_resolved", f"key {op.key}: still no definite answer", [op])

    rows = await ledger_rows(conn, setup.wallets)
    by_key: dict[str, list[LedgerRow]] = defaultdict(list)
    deposits = [r for r in rows if r.from_wallet is None]
    for row in rows:
        if row.description and row.description.startswith(prefix):
            by_key[row.description.removeprefix(prefix)].append(row)

    # --- one effect per key; duplicates told the same id -------------------------------------
    for key, found in by_key.items():
        if len(found) > 1:
            involved = [op for op in ops if op.key == key]
            violate("one_effect_per_key", f"key {key} has {len(found)} transfers", involved)
    answers: dict[str, set[str]] = defaultdict(set)
    for op in [*ops, *retries]:
        if op.kind != "reuse" and op.transfer_id is not None:
            answers[op.key].add(op.transfer_id)
    for key, ids in answers.items():
        if len(ids) > 1:
            involved = [op for op in ops if op.key == key]
            violate("one_effect_per_key", f"key {key} was answered {len(ids)} ids", involved)

    # --- acknowledged transfers exist exactly once, as acknowledged ---------------------------
    for op in [*ops, *retries]:
        if op.outcome != "ok" or op.kind == "reuse":
            continue
        found = by_key.get(op.key, [])
        if len(found) != 1:
            violate("acknowledged_exist_once", f"key {op.key}: {len(found)} transfers", [op])
            continue
        row = found[0]
        expected = (op.transfer_id, op.from_wallet, op.to_wallet, op.amount_minor)
        acked = (
            op.ack_from == op.from_wallet
            and op.ack_to == op.to_wallet
            and op.ack_amount is not None
            and parse_amount(op.ack_amount, currency) == op.amount_minor
        )
        actual = (row.id, row.from_wallet, row.to_wallet, row.amount_minor)
        if actual != expected or not acked or row.status != op.transfer_status:
            violate(
                "acknowledged_exist_once",
                f"key {op.key}: acknowledged {expected} {op.transfer_status}, "
                f"ledger has {actual} {row.status}",
                [op],
            )

    # --- a reused key never moves money ---------------------------------------------------------
    originals = {op.op: op for op in ops}
    for op in ops:
        if op.kind != "reuse" or op.outcome == "unknown":
            continue
        if op.outcome == "ok" or op.code != "idempotency_key_reuse":
            violate("reuse_refused", f"key {op.key} reused: {op.status} {op.code}", [op])
        earlier = originals.get(op.reused_key_of or -1)
        for row in by_key.get(op.key, []):
            if earlier is not None and row.amount_minor != earlier.amount_minor:
                violate("reuse_refused", f"key {op.key}: the reuse's amount was booked", [op])

    # --- unknowns now exist once or never happened ------------------------------------------
    for retry in retries:
        if retry.outcome == "unknown":
            continue
        found = by_key.get(retry.key, [])
        if retry.transfer_id is not None and [r.id for r in found] != [retry.transfer_id]:
            violate(
                "unknown_resolved",
                f"key {retry.key}: retry answered {retry.transfer_id}, ledger has "
                f"{[r.id for r in found]}",
                [retry],
            )

    # --- the model: balances the history implies ----------------------------------------------
    expected_balance = dict.fromkeys(setup.wallets, 0)
    for row in deposits:
        if row.status == "completed" and row.to_wallet in expected_balance:
            expected_balance[row.to_wallet] += row.amount_minor
    requested = {op.key for op in ops if op.kind != "reuse"}
    for key in by_key:
        if key not in requested:
            violate("model_balances", f"a transfer with key {key} that no operation asked for")
    for key in requested:
        for row in by_key.get(key, [])[:1]:
            if row.status == "completed" and row.from_wallet and row.to_wallet:
                expected_balance[row.from_wallet] -= row.amount_minor
                expected_balance[row.to_wallet] += row.amount_minor
    strays = [
        r
        for r in rows
        if r.from_wallet is not None
        and not (r.description and r.description.startswith(prefix))
        and r.status == "completed"
    ]
    for row in strays:
        violate("model_balances", f"transfer {row.id} moved the run's money without a key")
    balances = await _balances(client, setup.wallets)
    for wallet, balance in balances.items():
        if balance != expected_balance[wallet]:
            violate(
                "model_balances",
                f"wallet {wallet}: balance {format_amount(balance, currency)}, the history "
                f"implies {format_amount(expected_balance[wallet], currency)}",
                [op for op in ops if wallet in (op.from_wallet, op.to_wallet)][:10],
            )
        if balance < 0:
            violate("no_negative_balance", f"wallet {wallet}: {balance}")

    # --- conservation: what was deposited is what the wallets hold ----------------------------
    deposited = sum(r.amount_minor for r in deposits if r.status == "completed")
    held = sum(balances.values())
    if held != deposited:
        violate(
            "conservation",
            f"the run's wallets hold {format_amount(held, currency)} but "
            f"{format_amount(deposited, currency)} was deposited into them",
        )

    # --- the ledger audit (every wallet, every invariant) -------------------------------------
    report = await audit(conn)
    for result in report.checks:
        if not result.ok:
            name = (
                "conservation"
                if result.name
                in ("currency_sums_to_zero", "wallets_equal_deposits_minus_withdrawals")
                else "ledger_audit"
            )
            violate(name, f"ledger check {result.name}: {result.violations} violation(s)")

    # --- notifications -------------------------------------------------------------------------
    completed = {
        rows[0].id
        for key, rows in by_key.items()
        if key in requested and rows[0].status == "completed"
    }
    if not notifications:
        skipped["notified"] = "not requested (--check-notifications)"
    else:
        missing = await _undelivered(conn, completed, notify_within_s)
        for transfer_id in sorted(missing)[:20]:
            violate("notified", f"transfer {transfer_id}: no event at the notification service")
        if len(missing) > 20:
            violate("notified", f"... and {len(missing) - 20} more transfers without an event")

    resolutions = Counter(
        "unresolved"
        if r.outcome == "unknown"
        else "existed_once"
        if r.key in before
        else "never_happened"
        for r in retries
    )
    return Verdict(
        counts=summarize(ops),
        violations=violations,
        checked=[c for c in CHECKS if c not in skipped],
        skipped=skipped,
        resolutions=dict(resolutions),
    )


async def _balances(client: BankClient, wallets: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for wallet in wallets:
        body = await client.must("GET", f"/v1/wallets/{wallet}")
        out[wallet] = parse_amount(str(body["balance"]), get_currency(str(body["currency"])))
    return out


async def _undelivered(conn: asyncpg.Connection, ids: set[str], within_s: float) -> set[str]:
    """Completed transfers whose event the notification service has not received, after
    waiting up to ``within_s`` for the outbox to catch up."""
    deadline = time.monotonic() + within_s
    missing = set(ids)
    while missing:
        found = await conn.fetch(
            """
            SELECT body::jsonb -> 'data' -> 'transfer' ->> 'id' AS id
            FROM notifications.events
            WHERE body::jsonb -> 'data' -> 'transfer' ->> 'id' = ANY($1::text[])
            """,
            list(missing),
        )
        missing -= {r["id"] for r in found}
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return missing

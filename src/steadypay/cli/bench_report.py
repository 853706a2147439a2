"""Human tables for benchmark figures."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_resilience(figures: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="call rejected by an open circuit (target: median < 1 ms)")
    for column in ("store", "calls", "median µs", "p99 µs"):
        table.add_column(column)
    for r in figures["rejection_latency"]:
        table.add_row(r["store"], str(r["calls"]), f"{r['median_us']:.1f}", f"{r['p99_us']:.1f}")
    console.print(table)
    table = Table(title="retry amplification, dependency failing 100% (target: <= 1.1x)")
    for column in ("policy", "calls", "attempts", "attempts / call", "seconds"):
        table.add_column(column)
    for a in figures["retry_amplification"]:
        table.add_row(
            a["policy"], str(a["calls"]), str(a["attempts"]), f"{a['amplification']:.3f}",
            f"{a['seconds']:.2f}",
        )  # fmt: skip
    console.print(table)


# --- bench payments (issue 7) ---------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_payments(figures: dict[str, Any]) -> None:
    """The table of `steadypay bench payments`: one row per phase, then the targets."""
    console = Console()
    if not console.is_terminal:  # a log or a pipe: don't wrap the table to 80 columns
        console = Console(width=170)
    o = figures["options"]
    table = Table(
        title=f"steadypay bench payments: {o['clients']} clients, {o['api_workers']} API "
        f"workers, {o['duration_s']:g} s per phase, {o['wallets']} wallets, "
        f"{figures['machine']['cores']} cores; transfers as {o['auth']}"
    )
    columns = ("phase", "transfers/s", "x pgbench", "p50 ms", "p95 ms", "p99 ms",
               "CPU% sp / pg / gen", "gen max%", "RSS MB/worker", "answers", "audit")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("phase", "answers") else "right")
    for p in figures["phases"]:
        if not p.get("available", True):
            table.add_row(p["name"], "not available", *[""] * 8, p.get("note", ""))
            continue
        lat, cpu = p["latency_ms"], p["cpu_pct_of_machine"]
        rss = p.get("peak_rss_mb_per_api_worker", {})
        audit = p.get("audit")
        table.add_row(
            p["name"],
            f"{p['transfers_per_s']:,.0f}",
            "-" if p["ratio_to_pgbench"] is None else f"{p['ratio_to_pgbench']:.2f}",
            _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"]),
            f"{cpu.get('steadypay', 0):.0f} / {cpu.get('postgresql', 0):.0f} / "
            f"{cpu.get('loadgen', 0):.0f}",
            "-" if "loadgen_busiest_process_pct" not in p
            else f"{p['loadgen_busiest_process_pct']:.0f}",
            " ".join(f"{mb:.0f}" for mb in rss.values()) or "-",
            " ".join(f"{k}:{v}" for k, v in p["statuses"].items()),
            "-" if audit is None else ("[green]clean[/]" if audit["ok"] else "[red]VIOLATED[/]"),
        )  # fmt: skip
    console.print(table)
    console.print(
        "CPU% = share of the whole machine (all cores) over the phase: steadypay's processes / "
        "PostgreSQL's / the load generator's (pgbench itself in the pgbench row); gen max% = "
        "the busiest load-generator process, % of one core (100 = it was the bottleneck)."
    )
    for p in figures["phases"]:
        drain = p.get("outbox_drain") or {}
        if drain.get("left"):
            console.print(
                f"[yellow]{p['name']} started with {drain['left']} outbox events undelivered "
                f"(the relay's backlog competed for the CPU)[/]"
            )
    targets = Table(title="issue 7 targets")
    for column in ("target", "goal", "measured", "met"):
        targets.add_column(column)
    for t in figures["targets"]:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[t["met"]]
        measured = "-" if t["measured"] is None else f"{t['measured']:g}"
        targets.add_row(t["target"], t["goal"], measured, met)
    console.print(targets)

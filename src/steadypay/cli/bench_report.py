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

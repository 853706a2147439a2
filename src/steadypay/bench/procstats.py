"""CPU seconds of process trees, and peak resident memory, from the kernel's accounting (psutil).

A tree's CPU is its root's user + system time, the CPU of children the root has already reaped
(``children_user``/``children_system``: PostgreSQL backends that exited, for instance) and the
user + system time of every live descendant. Two snapshots around a run give what the tree used
during it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and all its descendants (0 if it is gone)."""
    try:
        process = psutil.Process(root)
        times = process.cpu_times()
        total: float = times.user + times.system + times.children_user + times.children_system
        descendants = process.children(recursive=True)
    except psutil.Error:
        return 0.0
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            t = child.cpu_times()
            total += t.user + t.system
    return total


def snapshot(groups: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds so far of each named group of process trees."""
    return {name: sum(tree_cpu_s(pid) for pid in roots) for name, roots in groups.items()}


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}


def peak_rss_mb(pid: int) -> float | None:
    """``VmHWM`` (the high-water mark of resident memory) of ``pid`` in MB, None if gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return None


def cores() -> int:
    return psutil.cpu_count() or 1

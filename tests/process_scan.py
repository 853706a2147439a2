"""Finding processes a test left behind, by what their command line names."""

from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(path: Path) -> list[str]:
    """``pid: command line`` of every live process whose command line mentions ``path``
    (Patroni names its configuration, the postmaster its data directory)."""
    needle = os.fsencode(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state not in ("Z", "X"):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found

"""The architecture holds: layers are enforced, and only composition roots build resources.

``make test`` runs ``lint-imports`` with the contracts in ``pyproject.toml``; the first test
proves those contracts can fail (a back-import in a copy of the tree breaks them). The second
reads every module of ``src/steadypay`` and finds each place that opens a pool, a connection
or a client, or reads the environment: each must be a composition root, a factory that the
roots call, or a harness that is a process of its own (bench, chaos), listed below with why.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "steadypay"

CONSTRUCTORS = {
    "create_database": "a pool",
    "create_pool": "a pool",
    "connect": "a database connection (asyncpg.connect)",
    "redis_client": "a Redis client",
    "from_url": "a Redis client",
    "ClientSession": "an aiohttp client",
    "AsyncClient": "an httpx client",
    "Settings": "the settings (the environment)",
    "getenv": "the environment",
}

ALLOWED: dict[str, set[str]] = {
    # the composition roots
    "bootstrap/": {"*"},
    # the CLI process's own root: it reads Settings once and hands them down
    "cli/main.py": {"Settings"},
    # the factories the roots call
    "db/pool.py": {"create_pool"},
    "resilience/redis_store.py": {"from_url"},
    "resilience/client.py": {"ClientSession"},  # made lazily in the loop that uses it
    "notifications/worker.py": {"AsyncClient"},  # webhook_http_client(), called by the root
    # the leader lease holds one session-level advisory lock on a dedicated connection
    "monitor/lease.py": {"connect"},
    # harnesses that ship as commands: each is a process (or a client) of its own
    "bench/": {"*"},
    "chaos/": {"*"},
    "cli/demo.py": {"AsyncClient"},
    "cli/chaos.py": {"connect"},  # `steadypay chaos bank`: the checker reads the ledger
}


def _allowed(relative: str, name: str) -> bool:
    for prefix, names in ALLOWED.items():
        if (relative == prefix or (prefix.endswith("/") and relative.startswith(prefix))) and (
            "*" in names or name in names
        ):
            return True
    return False


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines reading ``os.environ[...]`` / ``os.environ.get`` (not passing it to a child)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript | ast.Attribute) and isinstance(
            getattr(node, "value", None), ast.Attribute
        ):
            inner = node.value
            assert isinstance(inner, ast.Attribute)
            if inner.attr == "environ" and (
                isinstance(node, ast.Subscript) or node.attr in {"get", "setdefault", "pop"}
            ):
                lines.append(node.lineno)
    return lines


def test_only_composition_roots_build_pools_clients_and_settings() -> None:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith("migrations/"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _called_name(node)
                if name in CONSTRUCTORS and not _allowed(relative, name):
                    found.append(f"{relative}:{node.lineno} builds {CONSTRUCTORS[name]}")
        for line in _environment_reads(tree):
            if not _allowed(relative, "environ") and relative not in ENVIRONMENT_READERS:
                found.append(f"{relative}:{line} reads the environment")
    assert not found, "\n".join(found)


ENVIRONMENT_READERS = {
    # prometheus_client's own variable, which it also reads itself: the multiprocess collector
    "observability/metrics.py",
    "cli/monitor.py",
    # `steadypay up` hands the generated admin key to the processes it starts
    "cli/up.py",
}


def test_the_layer_contract_fails_on_a_back_import(tmp_path: Path) -> None:
    """A copy of the tree where the database layer imports the payment API breaks the layers
    contract: lint-imports exits non-zero and names the import."""
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.fail("lint-imports is not installed (make test installs import-linter)")
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy / "steadypay", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "steadypay" / "db" / "__init__.py"
    target.write_text(target.read_text() + "\nimport steadypay.api.app  # noqa\n")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (tmp_path / ".importlinter").write_text(_ini(config))
    clean = subprocess.run(
        [str(linter), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert clean.returncode != 0, clean.stdout
    assert "steadypay.db is not allowed to import steadypay.api" in clean.stdout, clean.stdout


def _ini(config: dict[str, object]) -> str:
    """The pyproject contracts as an .importlinter INI file (for the copied tree)."""
    lines = ["[importlinter]", f"root_package = {config['root_package']}"]
    lines.append(f"include_external_packages = {config['include_external_packages']}")
    contracts = config["contracts"]
    assert isinstance(contracts, list)
    lines.append("contract_types =")
    for contract in contracts:
        lines.append("")
        lines.append(f"[importlinter:contract:{contract['id']}]")
        for key, value in contract.items():
            if key == "id":
                continue
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {item}" for item in value)
            else:
                lines.append(f"{key} = {value}")
    return "\n".join(line for line in lines if line != "contract_types =") + "\n"

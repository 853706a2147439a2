"""`steadypay admin-keys create|list|rotate|revoke`: named operator keys, on the database.

Each change is written to the audit trail as ``cli:<login>@<host>`` from ``local``. The secret
of a created or rotated key is printed once (on stdout, alone, so ``$(...)`` captures it);
everything else goes to stderr or the table. The API offers the same at ``/v1/admin/keys``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from steadypay.bootstrap.common import open_database
from steadypay.cli.database import database
from steadypay.config import Settings
from steadypay.errors import SteadypayError
from steadypay.identity import AuditEntry, OperatorKeys
from steadypay.identity.audit import cli_entry
from steadypay.identity.domain import AdminKey

app = typer.Typer(
    help="Named operator (admin) keys: create, list, rotate, revoke.", no_args_is_help=True
)

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded database [default: ./.steadypay]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _entry(action: str) -> AuditEntry:
    return cli_entry(action)


def _run(data_dir: Path | None, job: Callable[[OperatorKeys], Awaitable[T]]) -> T:
    from steadypay.cli.main import _settings  # the CLI's one reader of the environment

    settings: Settings = _settings()

    async def main(url: str) -> T:
        db = await open_database(settings, "steadypay-admin-keys", url=url, min_size=0, max_size=1)
        try:
            return await job(OperatorKeys(db))
        finally:
            await db.close()

    with database(settings, (data_dir or settings.data_dir).absolute()) as target:
        try:
            return asyncio.run(main(target.url))
        except SteadypayError as exc:
            Console(stderr=True).print(f"[red]{exc.code}[/]: {exc.message}")
            raise typer.Exit(1) from exc


def _table(keys: list[AdminKey]) -> Table:
    table = Table(title="operator keys")
    for column in ("id", "name", "created", "by", "rotated", "revoked"):
        table.add_column(column)
    for key in keys:
        row = key.to_json()
        table.add_row(
            row["id"],
            row["name"],
            row["created_at"][:19],
            row["created_by"],
            (row["rotated_at"] or "")[:19],
            (row["revoked_at"] or "")[:19],
        )
    return table


def _print_secret(key: AdminKey, secret: str, as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps(key.to_json() | {"key": secret}))
        return
    err = Console(stderr=True)
    err.print(f"{verb} [bold]{key.id}[/] ({key.name}); its secret, shown once:")
    print(secret)


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who holds it, e.g. alice@ops (a-z 0-9 . _ @ -)")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Create a named operator key and print its secret once."""
    from steadypay.identity.audit import ADMIN_KEY_CREATE

    key, secret = _run(data_dir, lambda keys: keys.create(name, _entry(ADMIN_KEY_CREATE)))
    _print_secret(key, secret, as_json, "created")


@app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too")] = False,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The operator keys (never their secrets)."""
    keys = _run(data_dir, lambda k: k.list(include_revoked=include_revoked))
    if as_json:
        print(json.dumps([k.to_json() for k in keys]))
    else:
        Console().print(_table(keys))


@app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (ak_…)")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """A new secret for the key; the old one is refused at once."""
    from steadypay.identity.audit import ADMIN_KEY_ROTATE

    key, secret = _run(data_dir, lambda keys: keys.rotate(key_id, _entry(ADMIN_KEY_ROTATE)))
    _print_secret(key, secret, as_json, "rotated")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (ak_…)")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen")] = False,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Refuse the key from now on (kept in the list with --all, and in the audit trail)."""
    from steadypay.identity.audit import ADMIN_KEY_REVOKE

    if dry_run:
        Console(stderr=True).print(f"would revoke {key_id}: its requests get 401 from then on")
        return
    if not yes and not typer.confirm(f"Revoke {key_id}? Its holder is locked out at once."):
        raise typer.Exit(1)
    key = _run(data_dir, lambda keys: keys.revoke(key_id, _entry(ADMIN_KEY_REVOKE)))
    result: dict[str, Any] = key.to_json()
    if as_json:
        print(json.dumps(result))
    else:
        Console().print(f"revoked {key.id} ({key.name}) at {result['revoked_at']}")

"""``steadypay cluster``: the PostgreSQL cluster that ``steadypay up --db-nodes N`` runs.

The commands work on ``<data-dir>/cluster`` (the data directory ``up`` used), while ``up``
runs. Their bodies are in :mod:`steadypay.cli.ha`, imported when a command runs, so that
``steadypay --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from steadypay.cli.ha import Action
    from steadypay.ha import PatroniCluster

app = typer.Typer(
    help="The PostgreSQL cluster under `steadypay up --db-nodes N` (Patroni).",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The data directory `up` used [default: ./.steadypay]"),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]


MAX_DB_NODES = 5


def db_nodes_problem(nodes: int, *, external_database: bool) -> str | None:
    """Why ``steadypay up --db-nodes nodes`` is refused, or None.

    1 is the single embedded node; 3 to 5 members make a Raft majority that survives the loss
    of one (3, 4) or two (5) of them. 2 survives none, and more than 5 on one machine add
    replication traffic and slower elections, not safety.
    """
    if nodes == 2:
        return (
            "2 members cannot lose one: Patroni's Raft needs a majority of the members "
            "(2 of 2) to keep or elect a primary, and with strict synchronous replication every "
            "commit needs both, so either member down stops the database. Use 1 (one embedded "
            "PostgreSQL) or 3 to 5 (3 survives the loss of one member, 5 of two)."
        )
    if nodes > MAX_DB_NODES:
        return (
            f"{nodes} members: at most {MAX_DB_NODES}. Five members already survive the loss "
            "of two; more on one machine only add replication traffic and a larger Raft "
            "majority to elect a primary. Use 1 or 3 to 5."
        )
    if nodes > 1 and external_database:
        return (
            f"{nodes} members would be a local PostgreSQL cluster, but "
            "STEADYPAY_DATABASE_URL names an external database: unset it to run the local "
            "cluster, or drop --db-nodes to use that database (its own high availability "
            "applies, docs/ha.md)."
        )
    return None


def open_cluster(data_dir: Path | None) -> PatroniCluster:
    """The cluster in ``<data_dir>/cluster``; exit status 1 if there is none."""
    from steadypay.cli.database import CLUSTER_DIR, cluster_for, has_cluster
    from steadypay.cli.main import _settings  # the CLI's one reader of the environment

    settings = _settings()
    directory = (data_dir or settings.data_dir).absolute()
    if not has_cluster(directory):
        typer.echo(
            f"no database cluster in {directory / CLUSTER_DIR}: start one with "
            f"`steadypay up --db-nodes 3 --data-dir {directory}`",
            err=True,
        )
        raise typer.Exit(1)
    return cluster_for(settings, directory)


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr. Sentences are not cut into lines (the terminal wraps them, a pipe
    keeps them whole); tables take 120 columns when stdout is no terminal, not rich's 80."""
    from rich.console import Console

    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    if not out.is_terminal:
        out = Console(soft_wrap=True, width=max(out.width, 120))
    return out, err


@app.command("status")
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help='{"members": [...]} on stdout')] = False,
) -> None:
    """Every member: role, state, timeline, replication lag, pids, ports. Exit status 1 when
    there is no cluster or no primary."""
    from steadypay.cli.ha import show_status

    cluster = open_cluster(data_dir)
    out, err = _consoles()
    try:
        ok = show_status(cluster, as_json=as_json, out=out, err=err)
    finally:
        cluster.close()
    if not ok:
        raise typer.Exit(1)


@app.command("switchover")
def switchover(
    candidate: Annotated[
        str | None, typer.Option(help="The replica to promote [default: Patroni picks]")
    ] = None,
    data_dir: DataDir = None,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Hand the primary role to a synchronous replica with a clean demotion (planned
    maintenance). Prints the new primary and how long it took."""
    _change_primary("switchover", candidate, data_dir, dry_run=dry_run, yes=yes)


@app.command("failover")
def failover(
    candidate: Annotated[str, typer.Option(help="The replica to promote")],
    data_dir: DataDir = None,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Promote this replica now, even if the primary is unhealthy or gone. Prints the new
    primary and how long it took."""
    _change_primary("failover", candidate, data_dir, dry_run=dry_run, yes=yes)


def _change_primary(
    action: Action, candidate: str | None, data_dir: Path | None, *, dry_run: bool, yes: bool
) -> None:
    from steadypay.cli.ha import change_primary

    cluster = open_cluster(data_dir)
    out, err = _consoles()
    try:
        ok = change_primary(
            cluster,
            action,
            candidate=candidate,
            dry_run=dry_run,
            yes=yes,
            interactive=sys.stdin.isatty(),
            confirm=lambda question: typer.confirm(question, default=False),
            out=out,
            err=err,
        )
    finally:
        cluster.close()
    if not ok:
        raise typer.Exit(1)

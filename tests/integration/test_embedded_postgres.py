"""The embedded PostgreSQL: real initdb, real servers on loopback, real connections."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from steadypay.db._pgproc import SERVER_USER, free_port, read_pidfile, userns_problem
from steadypay.db.embedded import EmbeddedPostgres, EmbeddedPostgresError, default_bin_dir

IS_ROOT = os.geteuid() == 0
NOT_ROOT = f"run_as_root only applies to root; these tests run as uid {os.geteuid()}"

MakePg = Callable[..., EmbeddedPostgres]


def sql(url: str, *statements: str) -> Any:
    """Run ``statements`` over one asyncpg connection; the last one's first value.

    ``asyncio.run`` runs in a worker thread: in the test's thread it would unset the event
    loop pytest-asyncio keeps for the session's async tests.
    """

    async def run() -> Any:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            result = None
            for statement in statements:
                result = await conn.fetchval(statement)
            return result
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def postmaster_pid(pg: EmbeddedPostgres) -> int:
    info = read_pidfile(pg.pgdata)
    assert info is not None
    return info.pid


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="steadypay-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_pg(shared_dir: Path) -> Iterator[MakePg]:
    """Builds EmbeddedPostgres objects and stops every one of them at teardown, even on failure.

    Depends on shared_dir so that the servers stop before their directory is removed.
    """
    with contextlib.ExitStack() as stack:

        def make(data_dir: Path, **options: Any) -> EmbeddedPostgres:
            pg = EmbeddedPostgres(data_dir, **options)
            stack.callback(pg.stop, "immediate")
            return pg

        yield make


@pytest.fixture
def pg(make_pg: MakePg, tmp_path: Path) -> EmbeddedPostgres:
    pg = make_pg(tmp_path / "data")
    pg.init()
    pg.start()
    return pg


def skip_unless_available(strategy: str) -> None:
    if not IS_ROOT:
        pytest.skip(NOT_ROOT)
    if strategy == "userns" and (problem := userns_problem()) is not None:
        pytest.skip(f"user namespaces are unavailable here: {problem}")
    if strategy == "user":
        if shutil.which("setpriv") is None:
            pytest.skip("run_as_root='user' needs setpriv (util-linux), which is not installed")
        with contextlib.suppress(KeyError):
            pwd.getpwnam(SERVER_USER)
            return
        if shutil.which("useradd") is None:
            pytest.skip(f"no {SERVER_USER!r} account and no useradd to create it")


def test_started_cluster_serves_its_database(pg: EmbeddedPostgres) -> None:
    assert sql(pg.url, "SELECT 1") == 1
    assert sql(pg.url, "SELECT current_database()") == "steadypay"
    query = "SELECT count(*) FROM pg_database WHERE datname = 'steadypay'"
    assert sql(pg.superuser_url(), query) == 1
    assert pg.url.startswith(
        f"postgresql://postgres:{pg.password_file.read_text().strip()}@127.0.0.1:{pg.port}/"
    )


def test_durable_replication_ready_defaults_and_overrides(make_pg: MakePg, tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    pg = make_pg(tmp_path / "data", port=port, settings={"max_connections": "50"})
    pg.init()
    pg.start()

    assert pg.port == port
    show = [
        "wal_level",
        "max_wal_senders",
        "max_connections",
        "fsync",
        "synchronous_commit",
        "unix_socket_directories",
        "listen_addresses",
    ]
    values = [sql(pg.url, f"SELECT current_setting('{name}')") for name in show]
    assert values == ["replica", "10", "50", "on", "on", "", "127.0.0.1"]


def test_password_is_required(
    pg: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))
    where = f"{pg.host}:{pg.port}/{pg.database}"

    with pytest.raises(asyncpg.InvalidPasswordError):
        sql(f"postgresql://postgres@{where}", "SELECT 1")
    with pytest.raises(asyncpg.InvalidPasswordError):
        sql(f"postgresql://postgres:not-the-password@{where}", "SELECT 1")


def test_password_file_is_private_and_never_logged(pg: EmbeddedPostgres) -> None:
    assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    assert pg.password_file.read_text().strip() not in pg.log_file.read_text()


def test_server_log_is_private_even_if_it_was_not(make_pg: MakePg, tmp_path: Path) -> None:
    """postgres.log holds statements and client addresses: 0600, also when an older one
    (from before this was so) was world-readable (issue 14, finding 10)."""
    pg = make_pg(tmp_path / "data")
    pg.init()
    pg.data_dir.mkdir(parents=True, exist_ok=True)
    pg.log_file.touch(mode=0o644)
    pg.log_file.chmod(0o644)
    pg.start()
    assert stat.S_IMODE(pg.log_file.stat().st_mode) == 0o600
    assert pg.log_file.stat().st_size > 0  # the server still writes it


def test_start_is_idempotent_and_a_second_object_reuses_the_server(
    pg: EmbeddedPostgres, make_pg: MakePg
) -> None:
    pid, port = postmaster_pid(pg), pg.port
    pg.init()
    pg.start()

    other = make_pg(pg.data_dir)
    other.init()
    other.start()

    assert (other.port, postmaster_pid(other)) == (port, pid)
    assert sql(other.url, "SELECT 1") == 1


def test_data_survives_a_restart(pg: EmbeddedPostgres) -> None:
    sql(pg.url, "CREATE TABLE kept (x int)", "INSERT INTO kept VALUES (42)")

    pg.stop()
    assert not pg.is_running()
    pg.start()

    assert sql(pg.url, "SELECT x FROM kept") == 42


def test_server_outlives_the_process_that_started_it(make_pg: MakePg, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pg = make_pg(data_dir)  # registered first so that teardown stops the server
    script = (
        "import sys; from pathlib import Path; from steadypay.db.embedded import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(Path(sys.argv[1])); pg.init(); pg.start(); print(pg.port)"
    )
    started = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert pg.is_running()
    pg.start()
    assert pg.port == int(started.stdout)
    assert sql(pg.url, "SELECT 1") == 1


def test_start_recovers_after_the_server_was_killed(pg: EmbeddedPostgres) -> None:
    sql(pg.url, "CREATE TABLE kept (x int)", "INSERT INTO kept VALUES (7)")
    os.kill(postmaster_pid(pg), signal.SIGKILL)  # postmaster.pid stays behind, stale

    pg.start()

    assert sql(pg.url, "SELECT x FROM kept") == 7


def test_stop_is_idempotent(pg: EmbeddedPostgres, tmp_path: Path) -> None:
    url = pg.url
    pg.stop()
    pg.stop()

    assert not pg.is_running()
    with pytest.raises(OSError, match="Connect call failed"):  # nobody listens any more
        sql(url, "SELECT 1")
    never_created = EmbeddedPostgres(tmp_path / "never")
    never_created.stop()
    assert not never_created.is_running()
    assert not never_created.data_dir.exists()


def test_start_before_init_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match=r"call init\(\) first"):
        EmbeddedPostgres(tmp_path / "data").start()


def test_failed_start_reports_the_server_log(make_pg: MakePg, tmp_path: Path) -> None:
    pg = make_pg(tmp_path / "data", settings={"shared_buffers": "plenty"})
    pg.init()

    with pytest.raises(EmbeddedPostgresError, match="did not start") as failure:
        pg.start(timeout=20)

    assert 'invalid value for parameter "shared_buffers"' in str(failure.value)
    assert not pg.is_running()


@pytest.mark.parametrize("strategy", ["userns", "user"])
def test_root_runs_the_server_unprivileged(
    strategy: str, make_pg: MakePg, shared_dir: Path
) -> None:
    skip_unless_available(strategy)
    pg = make_pg(shared_dir / "data", run_as_root=strategy)
    pg.init()
    pg.start()

    assert pg.runner.strategy == strategy
    assert sql(pg.url, "SELECT 1") == 1
    pid = postmaster_pid(pg)
    if strategy == "userns":  # another user namespace; the files stay root's on the host
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        assert pg.pgdata.stat().st_uid == 0
    else:
        server_uid = pwd.getpwnam(SERVER_USER).pw_uid
        assert Path(f"/proc/{pid}").stat().st_uid == server_uid
        assert pg.pgdata.stat().st_uid == server_uid
        assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    pg.stop()
    assert not pg.is_running()


def test_user_strategy_copies_binaries_its_account_cannot_reach(
    make_pg: MakePg, shared_dir: Path, tmp_path: Path
) -> None:
    skip_unless_available("user")
    installed = default_bin_dir().parent  # .../site-packages/pgserver/pginstall
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(installed.parent.parent / "pgserver.libs", private / "pgserver.libs")
    for part in ("bin", "lib", "share"):
        shutil.copytree(installed / part, private / "pgserver" / "pginstall" / part)
    cache = shared_dir / "cache"

    pg = make_pg(
        shared_dir / "data",
        run_as_root="user",
        bin_dir=private / "pgserver" / "pginstall" / "bin",
        cache_dir=cache,
    )
    pg.init()
    pg.start()

    assert sql(pg.url, "SELECT 1") == 1
    assert Path(os.readlink(f"/proc/{postmaster_pid(pg)}/exe")).is_relative_to(cache)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_user_strategy_explains_an_unreachable_data_dir(make_pg: MakePg, tmp_path: Path) -> None:
    skip_unless_available("user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    data_dir = private / "data"
    blocker = next(p for p in [*reversed(data_dir.parents)] if not p.stat().st_mode & stat.S_IXOTH)
    mode_before = blocker.stat().st_mode
    pg = make_pg(data_dir, run_as_root="user")

    with pytest.raises(EmbeddedPostgresError, match="cannot reach") as failure:
        pg.init()

    assert f"chmod o+x {blocker}" in str(failure.value)
    assert blocker.stat().st_mode == mode_before
    assert not pg.pgdata.exists()

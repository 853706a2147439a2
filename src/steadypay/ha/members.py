"""The members of one cluster as processes: launching each with its configuration, and
finding, reporting and stopping them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from steadypay.db._pgproc import EmbeddedPostgresError, Runner, reachable_bin_dir
from steadypay.db.embedded import default_bin_dir
from steadypay.ha.layout import ClusterError, ClusterLayout, ClusterSecrets, MemberPaths
from steadypay.ha.patroni_config import member_config, write_config
from steadypay.ha.process import MemberProcess, member_runner


class Members:
    """One :class:`MemberProcess` per member of ``layout``, and how to launch them.

    ``bin_dir`` is where the PostgreSQL programs are (``pgserver``'s by default);
    ``cache_dir`` where the "user" strategy copies them if its account cannot reach them.
    """

    def __init__(
        self,
        data_dir: Path,
        layout: ClusterLayout,
        *,
        bin_dir: Path | None,
        parameters: Mapping[str, str],
        run_as_root: str,
        cache_dir: Path,
    ) -> None:
        self._data_dir = data_dir
        self._layout = layout
        self._bin_dir = bin_dir
        self._parameters = dict(parameters)
        self._run_as_root = run_as_root
        self._cache_dir = cache_dir
        self._runner: Runner | None = None
        self._procs = {
            spec.name: MemberProcess(MemberPaths(data_dir, spec.name, spec.pg_port))
            for spec in layout.members
        }

    def __getitem__(self, member: str) -> MemberProcess:
        return self._procs[self._layout.member(member).name]

    def pids(self, member: str) -> tuple[int | None, int | None]:
        """``(postmaster pid, Patroni pid)`` of ``member``, None for what does not run."""
        proc = self[member]
        return proc.postmaster_pid(), proc.patroni_pid()

    @property
    def client_bin_dir(self) -> Path:
        """Where psql and the other client programs are (run as we are)."""
        try:
            return self._bin_dir or default_bin_dir()
        except EmbeddedPostgresError as exc:
            raise ClusterError(str(exc)) from exc

    def launch(self, member: str, secrets: ClusterSecrets) -> None:
        """Write ``member``'s configuration and start its Patroni, unless it runs already."""
        proc, spec = self[member], self._layout.member(member)
        if proc.patroni_pid() is not None:
            return  # running: reuse it
        if self._runner is None:
            self._runner = member_runner(self._run_as_root, self._data_dir)
        runner, paths = self._runner, proc.paths
        try:
            bin_dir = reachable_bin_dir(runner, self.client_bin_dir, self._cache_dir)
        except EmbeddedPostgresError as exc:
            raise ClusterError(str(exc)) from exc
        for directory in paths.dirs():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = member_config(
            self._layout, spec, paths, secrets, bin_dir=bin_dir, parameters=self._parameters
        )
        write_config(paths.config, config)
        paths.output.touch()
        runner.adopt(paths.root)
        runner.give(paths.socket_dir, paths.config, paths.output)
        proc.launch(runner)

    def failure(self) -> str | None:
        """Why a Patroni we started has exited, if one has (None while they all run)."""
        for name, proc in self._procs.items():
            if (code := proc.exited()) is not None:
                return f"Patroni of {name} exited with code {code}\n{proc.output_tail()}"
        return None

    def output_tails(self, members: list[str], lines: int = 15) -> str:
        return "\n".join(f"=== {m} ===\n{self[m].output_tail(lines)}" for m in members)

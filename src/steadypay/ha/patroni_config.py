"""Each member's Patroni configuration, and the reasons for its values.

Timing (Patroni enforces ``ttl >= 20``, ``loop_wait >= 1``, ``retry_timeout >= 3`` and
``loop_wait + 2 * retry_timeout <= ttl``):

``ttl = 20``
    How long the leader key lives without renewal: a node that vanishes (Patroni and
    PostgreSQL gone) is replaced after about this long. Patroni's floor: the fastest
    node-loss failover it allows.
``loop_wait = 1``
    The HA loop's period: a dead postmaster on the primary is noticed within a second, and
    with ``primary_start_timeout = 0`` the leader key is given up at once instead of
    restarting PostgreSQL in place. Replicas wake up on the key's deletion (Raft events), not
    at their next tick. Three members at one loop a second is a negligible load.
``retry_timeout = 5``
    How long a DCS or PostgreSQL call may keep failing before Patroni gives up on it; a
    primary that cannot renew its key for that long demotes itself. 5 s rides out stalls of a
    loaded two-core machine, and ``1 + 2 * 5 = 11 <= 20`` leaves the old primary 9 s of margin
    to demote before anyone else may take the key: never two primaries.

Replication: ``synchronous_mode: quorum`` with ``synchronous_node_count: 1`` makes the
primary wait for ANY one of the two standbys (``synchronous_standby_names = 'ANY 1 (...)'``),
so one standby lost does not stall writes, and Patroni promotes only a member of the quorum
that has every acknowledged commit. ``synchronous_mode_strict`` keeps writes blocked rather
than acknowledged without a second copy when no standby is left. Replication slots keep WAL
for a member that is down (``max_slot_wal_keep_size`` caps that, so a dead member cannot fill
the disk); ``wal_keep_size`` keeps recent WAL for ``pg_rewind`` and for a rejoining old
primary; ``use_pg_rewind`` (with data checksums and ``wal_log_hints``) lets an old primary
rejoin as a replica without a new base backup. ``hot_standby_feedback`` keeps vacuum on the
primary from cancelling the reads served by replicas.

Per-member settings (ports, paths) are local ``postgresql.parameters``: Patroni writes them
into the ``postgresql.conf`` it owns at every start, so ``pg_rewind`` copying that file from
the new primary loses nothing. Settings shared by all members live in the DCS.

The file is written as JSON, which is YAML too (Patroni reads it with ``yaml.safe_load``):
no YAML emitter needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steadypay.ha.layout import (
    REPLICATION_USER,
    REST_USER,
    SUPERUSER,
    ClusterLayout,
    ClusterSecrets,
    MemberPaths,
    MemberSpec,
    write_file_atomically,
)

TTL_S = 20
LOOP_WAIT_S = 1
RETRY_TIMEOUT_S = 5


def dcs_settings() -> dict[str, Any]:
    """The dynamic configuration stored in the DCS (at bootstrap, and again at each start)."""
    return {
        "ttl": TTL_S,
        "loop_wait": LOOP_WAIT_S,
        "retry_timeout": RETRY_TIMEOUT_S,
        "primary_start_timeout": 0,  # a crashed primary fails over rather than restarts
        "maximum_lag_on_failover": 1024 * 1024,
        "check_timeline": True,
        "synchronous_mode": "quorum",
        "synchronous_mode_strict": True,
        "synchronous_node_count": 1,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "replica",
                "hot_standby": "on",
                "wal_log_hints": "on",
                # a standby retries reaching the (dead) primary's WAL this often: the 5 s
                # default could hold a promotion for up to 5 s (seen in the failover drill)
                "wal_retrieve_retry_interval": "500ms",
                "max_connections": 200,
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_keep_size": "256MB",
                "max_slot_wal_keep_size": "2GB",
                "hot_standby_feedback": "on",
                "shared_buffers": "128MB",
                "password_encryption": "scram-sha-256",
            },
        },
    }


def member_config(
    layout: ClusterLayout,
    spec: MemberSpec,
    paths: MemberPaths,
    secrets: ClusterSecrets,
    *,
    bin_dir: Path,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Patroni configuration of ``spec``; ``parameters`` are extra PostgreSQL settings."""
    host = layout.host
    partners = [f"{host}:{m.raft_port}" for m in layout.members if m.name != spec.name]
    local_parameters: dict[str, Any] = {
        "unix_socket_directories": str(paths.socket_dir),
        "logging_collector": "on",
        "log_directory": str(paths.pg_log_dir),
        "log_filename": "postgresql-%a.log",
        "log_truncate_on_rotation": "on",
        "log_rotation_age": "1d",
        "log_rotation_size": 0,
        **(parameters or {}),
    }
    scram = "scram-sha-256"
    cidr = f"{host}/128" if ":" in host else f"{host}/32"
    return {
        "scope": layout.scope,
        "name": spec.name,
        "log": {"dir": str(paths.log_dir), "level": "INFO", "file_num": 4, "file_size": 10**7},
        "restapi": {
            "listen": f"{host}:{spec.rest_port}",
            "connect_address": f"{host}:{spec.rest_port}",
            "authentication": {"username": REST_USER, "password": secrets.rest},
        },
        "raft": {
            "data_dir": str(paths.raft_dir),
            "self_addr": f"{host}:{spec.raft_port}",
            "bind_addr": f"{host}:{spec.raft_port}",  # pysyncobj binds every interface else
            "partner_addrs": partners,
            "password": secrets.raft,
        },
        "bootstrap": {
            "dcs": dcs_settings(),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"{host}:{spec.pg_port}",
            "connect_address": f"{host}:{spec.pg_port}",
            "data_dir": str(paths.pgdata),
            "bin_dir": str(bin_dir),
            "pgpass": str(paths.pgpass),
            "use_unix_socket": True,
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": secrets.superuser},
                "replication": {"username": REPLICATION_USER, "password": secrets.replication},
            },
            "pg_hba": [
                f"local all all {scram}",
                f"host all all {cidr} {scram}",
                f"local replication {REPLICATION_USER} {scram}",
                f"host replication {REPLICATION_USER} {cidr} {scram}",
            ],
            "parameters": local_parameters,
            "basebackup": [{"checkpoint": "fast"}],
            "create_replica_methods": ["basebackup"],
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
    }


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write ``config`` atomically, mode 0600: it holds passwords."""
    text = "# written by steadypay.ha at every start of the member; edits are lost\n"
    write_file_atomically(path, text + json.dumps(config, indent=2) + "\n", 0o600)

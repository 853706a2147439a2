"""High availability of the database: a synchronous PostgreSQL cluster under Patroni.

- :mod:`~steadypay.ha.cluster` — :class:`PatroniCluster`: a local cluster of members on
  loopback (Patroni with its built-in Raft DCS, PostgreSQL from the ``pgserver`` wheel),
  started, observed, faulted and switched over from Python.
- :mod:`~steadypay.ha.status` — :class:`MemberStatus`, one member as ``cluster status`` lists it.
- :mod:`~steadypay.ha.patroni_config` — each member's Patroni configuration and the reasons
  for its timings.
- :mod:`~steadypay.ha.provision` — the ``steadypay`` role and database, and the URLs.
- :mod:`~steadypay.ha.layout`, :mod:`~steadypay.ha.members`, :mod:`~steadypay.ha.process`,
  :mod:`~steadypay.ha.rest` — the cluster directory, launching members, their processes,
  Patroni's REST API.

Imports only the platform (:mod:`steadypay.db`) and third-party packages; importing it starts
nothing.
"""

from steadypay.ha.cluster import BasePorts, PatroniCluster
from steadypay.ha.layout import APP_USER, SUPERUSER, ClusterError, MemberSpec
from steadypay.ha.status import MemberStatus, Role

__all__ = [
    "APP_USER",
    "SUPERUSER",
    "BasePorts",
    "ClusterError",
    "MemberSpec",
    "MemberStatus",
    "PatroniCluster",
    "Role",
]

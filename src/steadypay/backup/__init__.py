"""Continuous, encrypted backups of PostgreSQL with barman-cloud, and their proof by restore.

Modules: :mod:`~steadypay.backup.commands` (the barman-cloud command lines and PostgreSQL
parameters, pure), :mod:`~steadypay.backup.store` (S3: the DR copy, the records beside the
backups), :mod:`~steadypay.backup.service` (backup, list, restore, verify). The layout in the
bucket, encryption and retention are described in docs/dr.md.

This package knows nothing of the ledger: what verify audits and compares arrives as a
:class:`~steadypay.backup.service.LedgerProbe` from the composition root.
"""

from steadypay.backup import store
from steadypay.backup.commands import BackupTarget, BucketUrl, archive_parameters
from steadypay.backup.service import (
    BackupError,
    BackupInfo,
    LedgerProbe,
    LedgerSnapshot,
    PrimaryServer,
    VerifyResult,
    last_verified_backup_time,
)

__all__ = [
    "BackupError",
    "BackupInfo",
    "BackupTarget",
    "BucketUrl",
    "LedgerProbe",
    "LedgerSnapshot",
    "PrimaryServer",
    "VerifyResult",
    "archive_parameters",
    "last_verified_backup_time",
    "store",
]

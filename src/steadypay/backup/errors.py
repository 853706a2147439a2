"""The backup's errors. Like :class:`~steadypay.db.embedded.EmbeddedPostgresError`, not
:class:`~steadypay.errors.SteadypayError`s: they never reach an API client; the CLI reports
them as they are (a clear message and a non-zero exit)."""

from __future__ import annotations

from typing import Any


class BackupError(Exception):
    """A backup, restore or verification failed; the message says what and where."""

    code = "backup_failed"


class BackupStoreError(BackupError):
    """S3 refused or could not be reached while reading or writing backups."""

    code = "backup_store_unavailable"


class VerificationFailed(BackupError):
    """A backup did not restore, or what it restored differs from what it should hold;
    ``result`` is the recorded outcome (a ``VerifyResult``)."""

    code = "backup_verification_failed"

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result

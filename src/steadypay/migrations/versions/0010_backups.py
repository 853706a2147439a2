"""The backups' record: every base backup taken and every verification by restore.

Written by `steadypay backup run` and the backup agent (:mod:`steadypay.bootstrap.backup`);
the bucket holds the same outcomes beside the backups (``verifications/<id>.json``), which a
DR region reads when this database is gone. The API's readiness reads the newest passing
verification from here (``backup:verifiedAge``) and its gauge
``steadypay_backup_last_verified_age_seconds``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE SCHEMA backup;

CREATE TABLE backup.runs (
    backup_id     text PRIMARY KEY CHECK (length(backup_id) BETWEEN 1 AND 100),
    bucket        text NOT NULL,
    began_at      timestamptz NOT NULL,
    ended_at      timestamptz NOT NULL,
    duration_s    double precision NOT NULL CHECK (duration_s >= 0),
    ledger_lsn    pg_lsn NOT NULL,
    dr_copied     integer
);

CREATE TABLE backup.verifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backup_id        text NOT NULL CHECK (length(backup_id) BETWEEN 1 AND 100),
    bucket           text NOT NULL,
    ok               boolean NOT NULL,
    verified_at      timestamptz NOT NULL,
    backup_end_time  timestamptz,
    duration_s       double precision NOT NULL CHECK (duration_s >= 0),
    restored_to      text,
    audit_ok         boolean,
    totals_match     boolean,
    problems         jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX verifications_passed ON backup.verifications (backup_end_time DESC) WHERE ok;
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA backup CASCADE")

"""Chaos engineering: the faults in force, shared by every worker of every service.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE SCHEMA chaos;

-- One row at most: the configuration set through PUT /v1/admin/chaos. Each process reads it
-- every second; past expires_at the faults are off whatever the row says.
CREATE TABLE chaos.config (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    config      jsonb NOT NULL,
    expires_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA chaos CASCADE")

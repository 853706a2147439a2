"""The health monitor's record: every round, every decision, every failover and its ack, and
the canary's accounts.

Owned by the monitor (``steadypay monitor``, :mod:`steadypay.monitor`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE SCHEMA monitor;

-- One row per monitoring round: each component's result and latency, and what was decided.
-- Pruned after STEADYPAY_MONITOR_RETENTION_DAYS by the monitor itself.
CREATE TABLE monitor.rounds (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id            text NOT NULL CHECK (length(monitor_id) BETWEEN 1 AND 200),
    role                  text NOT NULL CHECK (role IN ('leader', 'follower')),
    started_at            timestamptz NOT NULL,
    finished_at           timestamptz NOT NULL,
    healthy               boolean NOT NULL,
    components            jsonb NOT NULL,
    consecutive_failures  integer NOT NULL CHECK (consecutive_failures >= 0),
    decision              text NOT NULL,
    reason                text NOT NULL,
    failover_id           bigint
);
CREATE INDEX rounds_by_time ON monitor.rounds (started_at);

-- One row per triggered failover. While the newest one is unacknowledged and younger than the
-- cool-down, no other failover is triggered (by any monitor, across restarts).
CREATE TABLE monitor.failovers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id       text NOT NULL,
    triggered_at     timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    reason           text NOT NULL,
    action           text NOT NULL,
    outcome          text NOT NULL
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'logged')),
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb,
    acknowledged_at  timestamptz,
    acknowledged_by  text
);
CREATE INDEX failovers_open ON monitor.failovers (triggered_at DESC)
    WHERE acknowledged_at IS NULL;

-- The synthetic canary's two users and their wallets (one row, created once, idempotently).
CREATE TABLE monitor.canary (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    currency    char(3) NOT NULL,
    user_a      uuid NOT NULL REFERENCES users (id),
    wallet_a    uuid NOT NULL REFERENCES wallets (id),
    user_b      uuid NOT NULL REFERENCES users (id),
    wallet_b    uuid NOT NULL REFERENCES wallets (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA monitor CASCADE")

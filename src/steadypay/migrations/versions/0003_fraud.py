"""The fraud service's own schema: the checks it has seen, for velocity, history and replay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = r"""
-- The fraud service shares the cluster but nothing else: its own schema, no foreign keys into
-- the ledger (a check may precede the transfer it is about, or be for one that never happens).
CREATE SCHEMA fraud;

-- One row per transfer_id ever checked (until purged): the request's fingerprint and the
-- verdict given, so a retried check replays it and is never counted twice.
CREATE TABLE fraud.checks (
    transfer_id       uuid PRIMARY KEY,
    sender_user_id    uuid NOT NULL,
    receiver_user_id  uuid,
    -- who is paid: the receiving user when known, else the receiving wallet
    receiver_key      uuid NOT NULL,
    currency          char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor      bigint NOT NULL CHECK (amount_minor > 0),
    checked_at        timestamptz NOT NULL,
    request_hash      bytea NOT NULL CHECK (length(request_hash) = 32),
    risk_score        smallint NOT NULL CHECK (risk_score BETWEEN 0 AND 100),
    reasons           text[] NOT NULL,
    model_version     text NOT NULL,
    CONSTRAINT checks_receiver_key CHECK (
        receiver_user_id IS NULL OR receiver_key = receiver_user_id
    )
);
-- Velocity: a sender's checks in a window, with what the sums need, from the index alone.
CREATE INDEX checks_sender_time ON fraud.checks (sender_user_id, checked_at)
    INCLUDE (currency, amount_minor);
-- "Paid this receiver before?" and "did the receiver pay the sender lately?".
CREATE INDEX checks_pair_time ON fraud.checks (sender_user_id, receiver_key, checked_at);
-- Retention purge.
CREATE INDEX checks_time ON fraud.checks (checked_at);
"""

DROP = r"""
DROP SCHEMA IF EXISTS fraud CASCADE;
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_statements(DROP):
        op.execute(statement)

"""Review holds (two-phase transfers), risk verdicts on transfers, and the transactional outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = r"""
-- A transfer held for review is TigerBeetle's pending transfer: its amount is reserved on the
-- sender (available_balance drops, balance does not) and nothing reaches the receiver until it
-- is posted (approved -> completed) or voided (rejected, expired).
ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('completed', 'failed', 'pending_review', 'rejected', 'expired'));
ALTER TABLE transfers
    ADD COLUMN hold_expires_at timestamptz,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolved_by text,
    ADD COLUMN risk_score smallint CHECK (risk_score BETWEEN 0 AND 100),
    ADD COLUMN risk_source text CHECK (risk_source IN ('service', 'fallback')),
    ADD COLUMN risk_reasons jsonb,
    ADD CONSTRAINT transfers_hold_has_expiry
        CHECK (status <> 'pending_review' OR hold_expires_at IS NOT NULL);
CREATE INDEX transfers_pending_review ON transfers (hold_expires_at)
    WHERE status = 'pending_review';

-- Status moves only forward: pending_review -> completed | rejected | expired; the others are
-- final. Identity columns stay immutable as before.
CREATE OR REPLACE FUNCTION steadypay_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transfers are never deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.id, NEW.type, NEW.from_wallet_id, NEW.to_wallet_id, NEW.amount, NEW.currency,
        NEW.initiated_by, NEW.created_at, NEW.risk_score, NEW.risk_source, NEW.risk_reasons)
       IS DISTINCT FROM
       (OLD.id, OLD.type, OLD.from_wallet_id, OLD.to_wallet_id, OLD.amount, OLD.currency,
        OLD.initiated_by, OLD.created_at, OLD.risk_score, OLD.risk_source, OLD.risk_reasons) THEN
        RAISE EXCEPTION 'a transfer''s parties, amount, currency, type and risk are immutable'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        OLD.status = 'pending_review' AND NEW.status IN ('completed', 'rejected', 'expired')
    ) THEN
        RAISE EXCEPTION 'transfer % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

-- The transactional outbox: an event row is written in the same transaction as the state
-- change it announces; a relay delivers it later, at least once.
CREATE TABLE outbox_events (
    id               uuid PRIMARY KEY,
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type             text NOT NULL,
    transfer_id      uuid,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX outbox_events_due ON outbox_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_events_dead ON outbox_events (seq) WHERE status = 'dead';
"""

# Downgrading is only possible while no transfer is held, rejected or expired (0001 has no
# such statuses); the trigger function goes back to 0001's before the columns it reads go.
DROP = r"""
CREATE OR REPLACE FUNCTION steadypay_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transfers are never deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.id, NEW.type, NEW.from_wallet_id, NEW.to_wallet_id, NEW.amount, NEW.currency,
        NEW.initiated_by, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.type, OLD.from_wallet_id, OLD.to_wallet_id, OLD.amount, OLD.currency,
        OLD.initiated_by, OLD.created_at) THEN
        RAISE EXCEPTION 'a transfer''s parties, amount, currency and type are immutable'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status IN ('completed', 'failed') AND NEW.status IS DISTINCT FROM OLD.status THEN
        RAISE EXCEPTION 'transfer % is final (%)', OLD.id, OLD.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
DROP TABLE IF EXISTS outbox_events;
DROP INDEX IF EXISTS transfers_pending_review;
ALTER TABLE transfers DROP CONSTRAINT IF EXISTS transfers_hold_has_expiry;
ALTER TABLE transfers DROP COLUMN IF EXISTS hold_expires_at, DROP COLUMN IF EXISTS resolved_at,
    DROP COLUMN IF EXISTS resolved_by, DROP COLUMN IF EXISTS risk_score,
    DROP COLUMN IF EXISTS risk_source, DROP COLUMN IF EXISTS risk_reasons;
ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('completed', 'failed'));
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_statements(DROP):
        op.execute(statement)

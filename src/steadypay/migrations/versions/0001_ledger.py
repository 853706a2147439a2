"""Users, wallets, transfers, entries and idempotency keys, with the ledger's invariants in SQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    api_key_hash  bytea NOT NULL UNIQUE CHECK (length(api_key_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- A wallet is a ledger account. User wallets belong to a user; each currency has one system
-- account that deposits and withdrawals post against, so every currency sums to exactly zero.
CREATE TABLE wallets (
    id                 uuid PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('user', 'system')),
    user_id            uuid REFERENCES users (id),
    currency           char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance            bigint NOT NULL DEFAULT 0,
    available_balance  bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wallets_owner_by_kind CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CONSTRAINT wallets_user_balance_nonnegative CHECK (
        kind = 'system'
        OR (balance >= 0 AND available_balance >= 0 AND available_balance <= balance)
    ),
    CONSTRAINT wallets_one_per_user_currency UNIQUE (user_id, currency),
    CONSTRAINT wallets_id_currency UNIQUE (id, currency)
);
CREATE UNIQUE INDEX wallets_one_system_per_currency ON wallets (currency) WHERE kind = 'system';

-- from/to carry no foreign key on purpose: a transfer that failed because a wallet does not
-- exist is still recorded, with the id the caller named. Entries, which move money, do.
CREATE TABLE transfers (
    id               uuid PRIMARY KEY,
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type             text NOT NULL CHECK (type IN ('deposit', 'withdrawal', 'transfer')),
    status           text NOT NULL CHECK (status IN ('completed', 'failed')),
    from_wallet_id   uuid,
    to_wallet_id     uuid,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description      text CHECK (length(description) <= 500),
    failure_code     text,
    failure_message  text,
    initiated_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT transfers_failure_iff_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL)),
    CONSTRAINT transfers_distinct_parties CHECK (from_wallet_id IS DISTINCT FROM to_wallet_id),
    CONSTRAINT transfers_id_currency UNIQUE (id, currency)
);
CREATE INDEX transfers_from_wallet ON transfers (from_wallet_id, seq DESC);
CREATE INDEX transfers_to_wallet ON transfers (to_wallet_id, seq DESC);

-- Postings (the seed's balance_history). Append-only; the currency columns let foreign keys
-- prove an entry's wallet and transfer have the same currency.
CREATE TABLE entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id     uuid NOT NULL,
    wallet_id       uuid NOT NULL,
    currency        char(3) NOT NULL,
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_before  bigint NOT NULL,
    balance_after   bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT entries_balance_arithmetic CHECK (balance_after = balance_before + amount),
    CONSTRAINT entries_transfer_fk FOREIGN KEY (transfer_id, currency)
        REFERENCES transfers (id, currency),
    CONSTRAINT entries_wallet_fk FOREIGN KEY (wallet_id, currency)
        REFERENCES wallets (id, currency)
);
CREATE INDEX entries_wallet_newest_first ON entries (wallet_id, id DESC);
CREATE INDEX entries_transfer ON entries (transfer_id);

-- Stripe-style idempotency: the first response is stored in the same transaction as its effect.
CREATE TABLE idempotency_keys (
    principal        text NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint      bytea NOT NULL,
    response_status  smallint,
    response_body    text,
    transfer_id      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Invariant: entries are never updated or deleted (a correction is a new transfer).
CREATE FUNCTION steadypay_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER entries_no_update_delete BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION steadypay_entries_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION steadypay_entries_append_only();

-- Invariant: the postings of a transfer sum to zero and are written in one statement.
-- Statement-level with a transition table: one check per INSERT, however many rows.
CREATE FUNCTION steadypay_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced uuid;
BEGIN
    SELECT e.transfer_id INTO unbalanced
    FROM entries e
    WHERE e.transfer_id IN (SELECT DISTINCT transfer_id FROM new_entries)
    GROUP BY e.transfer_id
    HAVING sum(e.amount) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'postings of transfer % do not sum to zero', unbalanced
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION steadypay_entries_balanced();

-- Invariant: a transfer's identity (parties, amount, currency, type) never changes and
-- transfers are never deleted; only its status may move forward (later: review holds).
CREATE FUNCTION steadypay_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION steadypay_transfers_immutable();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION steadypay_entries_append_only();
"""

DROP = """
DROP TABLE IF EXISTS idempotency_keys, entries, transfers, wallets, users CASCADE;
DROP FUNCTION IF EXISTS steadypay_entries_append_only, steadypay_entries_balanced,
    steadypay_transfers_immutable;
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_statements(DROP):
        op.execute(statement)

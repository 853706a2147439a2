"""The notification service's own schema: received events, webhook endpoints, deliveries.

The notification service is a separate process; it shares the PostgreSQL server but keeps its
state in the ``notifications`` schema and touches nothing else.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE SCHEMA notifications;

-- One row per outbox event ever received: the primary key is the dedupe of redeliveries.
-- body is the exact JSON text sent to webhook endpoints (signatures cover these bytes).
CREATE TABLE notifications.events (
    id           uuid PRIMARY KEY,
    type         text NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    body         text NOT NULL,
    created_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- secret signs deliveries; during a rotation previous_secret signs them too until
-- previous_secret_expires_at. idempotency_key / rotation_key make create and rotate retryable.
CREATE TABLE notifications.webhook_endpoints (
    id                          uuid PRIMARY KEY,
    user_id                     uuid NOT NULL,
    url                         text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    secret                      text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    status                      text NOT NULL DEFAULT 'active'
                                CHECK (status IN ('active', 'disabled')),
    idempotency_key             text UNIQUE CHECK (length(idempotency_key) <= 400),
    rotation_key                text CHECK (length(rotation_key) <= 400),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    rotated_at                  timestamptz,
    CONSTRAINT webhook_endpoints_rotation_pair
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_active_by_user ON notifications.webhook_endpoints (user_id)
    WHERE status = 'active';

-- One delivery per (event, endpoint): a redelivered event never notifies an endpoint twice.
CREATE TABLE notifications.deliveries (
    id                uuid PRIMARY KEY,
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id          uuid NOT NULL REFERENCES notifications.events (id),
    endpoint_id       uuid NOT NULL REFERENCES notifications.webhook_endpoints (id),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    give_up_at        timestamptz NOT NULL,
    last_status_code  smallint,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_attempt_at   timestamptz,
    delivered_at      timestamptz,
    CONSTRAINT deliveries_once_per_endpoint UNIQUE (event_id, endpoint_id),
    CONSTRAINT deliveries_delivered_at CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX deliveries_due ON notifications.deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON notifications.deliveries (endpoint_id, seq DESC);
"""

DROP = r"""
DROP SCHEMA IF EXISTS notifications CASCADE;
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_statements(DROP):
        op.execute(statement)

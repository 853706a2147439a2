"""Operator identities and the audit trail.

- ``admin_keys``: named operator keys (``ak_…`` ids), stored as SHA-256 like user keys,
  rotated in place (a new secret, the old one refused at once) and revoked (kept, for the
  audit trail's sake). The key in ``STEADYPAY_ADMIN_KEY`` stays the break-glass key
  (``admin:env``).
- ``audit_log``: append-only (triggers refuse UPDATE, DELETE and TRUNCATE), one row per
  admin action and key change: who (``actor``), what (``action``, ``target``, ``details``),
  when, from where (``source``: the client address) and the request id.
- ``users.api_key_rotated_at``: when a user's key was last replaced.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE admin_keys (
    id           text PRIMARY KEY CHECK (id ~ '^ak_[0-9a-f]{12}$'),
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text
);
CREATE UNIQUE INDEX admin_keys_live_name ON admin_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action      text NOT NULL CHECK (action ~ '^[a-z_.]{1,64}$'),
    target      text CHECK (length(target) <= 200),
    source      text CHECK (length(source) <= 200),
    request_id  text CHECK (length(request_id) <= 200),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);

CREATE FUNCTION steadypay_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION steadypay_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION steadypay_audit_append_only();

ALTER TABLE users ADD COLUMN api_key_rotated_at timestamptz;
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN IF EXISTS api_key_rotated_at")
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP FUNCTION IF EXISTS steadypay_audit_append_only()")
    op.execute("DROP TABLE IF EXISTS admin_keys")

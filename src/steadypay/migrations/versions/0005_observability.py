"""Observability: per-minute SLI rollups of every service, and the results of ledger checks.

Owned by the SLO work (``observability.sli_minutes``) and the metrics/health work
(``observability.ledger_checks``). Each service upserts its own rows; nothing here is on the
money path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE SCHEMA observability;

-- One row per (service, minute): requests, failures (5xx and timeouts; timeouts = requests
-- slower than the request timeout, whatever their status) and a latency histogram: latency_counts[i]
-- requests took at most latency_le_ms[i] ms and more than latency_le_ms[i-1] (not cumulative);
-- requests slower than the last bound are in total only. Availability and the latency SLI of
-- any window are sums over rows. Workers add to the same row (upsert, element-wise addition).
-- /health/* and /metrics are not counted. See docs/slo.md.
CREATE TABLE observability.sli_minutes (
    service         text NOT NULL CHECK (length(service) BETWEEN 1 AND 50),
    minute          timestamptz NOT NULL CHECK (date_trunc('minute', minute) = minute),
    total           bigint NOT NULL CHECK (total >= 0),
    failures        bigint NOT NULL CHECK (failures BETWEEN 0 AND total),
    timeouts        bigint NOT NULL DEFAULT 0 CHECK (timeouts BETWEEN 0 AND failures),
    latency_le_ms   integer[] NOT NULL,
    latency_counts  bigint[] NOT NULL,
    CHECK (cardinality(latency_le_ms) = cardinality(latency_counts)),
    PRIMARY KEY (service, minute)
);
CREATE INDEX sli_minutes_by_minute ON observability.sli_minutes (minute);

-- The outcome of every `steadypay ledger check` (and of the monitor's canary verification):
-- the last row feeds steadypay_ledger_check_violations.
CREATE TABLE observability.ledger_checks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at   timestamptz NOT NULL DEFAULT now(),
    violations   integer NOT NULL CHECK (violations >= 0),
    report       jsonb NOT NULL
);
"""


def upgrade() -> None:
    for statement in split_statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA observability CASCADE")

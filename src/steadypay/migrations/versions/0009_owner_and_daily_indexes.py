"""Indexes for a user's wallets and a wallet's transfers of the day.

Without them two queries read whole tables as the ledger grows:

- ``wallets.user_id`` had no index, so a user's wallets (``GET /v1/users/{id}/wallets``, the
  webhook routes' ownership checks) and the fallback rules' daily total were a scan of
  ``wallets``;
- the daily total (``DailyTotals.get``, asked on every transfer while the fraud service is
  down) found a wallet's transfers through ``transfers_from_wallet (from_wallet_id, seq)``
  and filtered them by day: the sender's whole history per transfer.

Measured in issue 7's benchmark: with the fraud service down, PostgreSQL at 82-87% of the
machine and 49-84 transfers/s once the batch phase had grown ``transfers`` past 100,000 rows.

On a large production table, create the two indexes ``CONCURRENTLY`` before upgrading (the
names below, ``IF NOT EXISTS`` keeps them): a plain ``CREATE INDEX`` blocks writes while it
builds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS wallets_user ON wallets (user_id)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS transfers_from_wallet_created "
        "ON transfers (from_wallet_id, created_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS transfers_from_wallet_created")
    op.execute("DROP INDEX IF EXISTS wallets_user")

"""The postings-sum trigger, checked transfer by transfer through the entries_transfer index.

The first version (0001) checked ``transfer_id IN (SELECT DISTINCT transfer_id FROM
new_entries)`` with one GROUP BY over ``entries``; PostgreSQL has no statistics for a transition
table and planned it as a nested loop over it: 2.9 s for the 16,378 postings of an 8,189-
transfer batch. The same invariant (every touched transfer's postings, old and new, sum to zero)
with a lateral sum per transfer: 0.24 s (measured in issue 7's note).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

from steadypay.db.sqlscript import split_statements

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE OR REPLACE FUNCTION steadypay_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced uuid;
BEGIN
    SELECT n.transfer_id INTO unbalanced
    FROM (SELECT DISTINCT transfer_id FROM new_entries) AS n
    CROSS JOIN LATERAL (
        SELECT sum(e.amount) AS total FROM entries AS e WHERE e.transfer_id = n.transfer_id
    ) AS s
    WHERE s.total <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'postings of transfer % do not sum to zero', unbalanced
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION steadypay_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


def upgrade() -> None:
    for statement in split_statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_statements(DOWNGRADE):
        op.execute(statement)

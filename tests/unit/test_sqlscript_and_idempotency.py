"""The migration splitter, and idempotency fingerprints and key validation."""

from __future__ import annotations

import pytest

from steadypay.db.sqlscript import split_statements
from steadypay.errors import IdempotencyKeyRequired
from steadypay.idempotency.domain import fingerprint, validate_key


def test_split_respects_dollar_quotes_literals_and_comments() -> None:
    script = """
    CREATE TABLE t (a text DEFAULT 'x;y''z'); -- a comment; with a semicolon
    CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'no; never'; END $$;
    CREATE INDEX i ON t (a)
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[0] == "CREATE TABLE t (a text DEFAULT 'x;y''z')"
    assert statements[1].endswith("END $$")
    assert statements[2] == "CREATE INDEX i ON t (a)"


def test_fingerprint_normalises_but_distinguishes() -> None:
    base = {"to": "w1", "amount": 1000, "currency": "USD"}
    assert fingerprint("deposit", base) == fingerprint("deposit", dict(reversed(base.items())))
    assert fingerprint("deposit", base) != fingerprint("withdrawal", base)
    assert fingerprint("deposit", base) != fingerprint("deposit", base | {"amount": 1001})


@pytest.mark.parametrize("bad", [None, "", "k" * 256, "tab\tkey", "ключ"])
def test_invalid_keys(bad: str | None) -> None:
    with pytest.raises(IdempotencyKeyRequired):
        validate_key(bad)


def test_valid_keys() -> None:
    assert validate_key("a") == "a"
    assert validate_key("k" * 255) == "k" * 255

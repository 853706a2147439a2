"""The log redaction processor masks secrets and personal data wherever they appear."""

from __future__ import annotations

from typing import Any

from steadypay.identity.domain import new_api_key
from steadypay.observability.logging import REDACTED, mask, redact


def run(**fields: Any) -> dict[str, Any]:
    return dict(redact(None, "info", dict(fields)))


def test_values_under_sensitive_keys_are_replaced_whatever_they_look_like() -> None:
    out = run(event="x", api_key="abc", Authorization="Bearer zzz", password="hunter2", n=3)
    assert out == {
        "event": "x",
        "api_key": REDACTED,
        "Authorization": REDACTED,
        "password": REDACTED,
        "n": 3,
    }


def test_secrets_and_emails_inside_free_text_and_nested_values_are_masked() -> None:
    key = new_api_key()
    text = (
        f"user key {key} sent whsec_{'a' * 32} with Bearer abcdefghijkl to "
        "postgresql://app:s3cr3t@db:5432/x for ana.lopez+1@example.com"
    )
    masked = mask(text)
    for secret in (key, "whsec_" + "a" * 32, "abcdefghijkl", "s3cr3t", "ana.lopez+1@example.com"):
        assert secret not in masked
    assert "postgresql://[redacted]@db:5432/x" in masked
    nested = run(event="e", detail={"email": "b@example.org", "items": [f"k={key}"]})
    assert nested["detail"]["email"] == REDACTED
    assert key not in str(nested)


def test_ordinary_values_pass_unchanged() -> None:
    fields = {
        "event": "http_request",
        "route": "/v1/transfers/{transfer_id}",
        "transfer_id": "0b8f3d1e-0000-4000-8000-000000000000",
        "request_id": "req_0123456789abcdef",
        "status": 201,
    }
    assert run(**fields) == fields

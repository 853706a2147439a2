"""Webhook signatures: what a receiver's verify accepts and what it refuses."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from steadypay.notifications.signing import SignatureError, parse, sign, verify

BODY = b'{"id":"evt_1","type":"transfer.completed","data":{"transfer":{"amount":"12.34"}}}'
SECRET = "whsec_" + "a" * 43
OTHER = "whsec_" + "b" * 43
T = 1_764_000_000


def test_round_trip_and_the_documented_construction() -> None:
    header = sign(BODY, [SECRET], T)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    verify(BODY, header, SECRET, now=T)
    verify(BODY, header, SECRET, now=T + 300)  # the edge of the default tolerance
    verify(BODY, header, SECRET, now=T - 300)  # a receiver's clock may run behind


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b"12.34", b"99.34"),
        BODY + b" ",
        BODY[:-1],
        b"",
    ],
)
def test_a_tampered_body_is_refused(body: bytes) -> None:
    header = sign(BODY, [SECRET], T)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body, header, SECRET, now=T)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(BODY, sign(BODY, [SECRET], T), OTHER, now=T)


def test_a_changed_timestamp_is_refused() -> None:
    header = sign(BODY, [SECRET], T).replace(f"t={T}", f"t={T + 1}")
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(BODY, header, SECRET, now=T)


@pytest.mark.parametrize("now", [T + 301, T - 301, T + 86_400])
def test_outside_the_tolerance_is_refused(now: int) -> None:
    header = sign(BODY, [SECRET], T)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, header, SECRET, now=now)
    verify(BODY, header, SECRET, now=now, tolerance_s=86_401)


def test_rotation_carries_two_signatures_new_first_and_either_secret_verifies() -> None:
    header = sign(BODY, [OTHER, SECRET], T)
    timestamp, signatures = parse(header)
    assert timestamp == T
    assert signatures == [
        hmac.new(s.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        for s in (OTHER, SECRET)
    ]
    verify(BODY, header, SECRET, now=T)
    verify(BODY, header, OTHER, now=T)
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_neither", now=T)


def test_unknown_schemes_are_ignored() -> None:
    header = sign(BODY, [SECRET], T) + ",v2=somethingnew"
    verify(BODY, header, SECRET, now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={'0' * 64}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},v2={'0' * 64}",  # only an unknown scheme
        f"t=abc,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=zz{'0' * 62}",
        f"t={T},v1={'0' * 63}",
        f"t={T},v1=",
        f"t={T},,v1={'0' * 64}",
        f"t={T},=x,v1={'0' * 64}",
        f"t={T},v1={'é' * 64}",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(BODY, header, SECRET, now=T)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(BODY, [], T)

"""Issue 14, findings 1 and 8, without I/O: the internal service keys and the metrics token in
``Settings`` (production refuses unsafe ones; elsewhere one key is derived from the admin key),
and the constant-time checks of :mod:`steadypay.http.service_auth`, and the monitor's metrics port
(the same rule as every service's ``/metrics``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from steadypay.bootstrap.monitor import guarded_metrics_app
from steadypay.config import Environment, Settings
from steadypay.config.contexts import derived_internal_key
from steadypay.errors import AuthenticationError, PermissionDenied
from steadypay.http.service_auth import ServiceKeys, is_loopback, metrics_refusal

ADMIN = "admin-" + "a1b2c3d4e5f6" * 4
GOOD = "internal-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OTHER = "internal-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
URL = "postgresql://steadypay@db/steadypay"


def production(**changes: object) -> Settings:
    fields: dict[str, object] = {
        "env": Environment.PRODUCTION,
        "database_url": URL,
        "admin_key": ADMIN,
        "internal_keys": (GOOD,),
    }
    return Settings.model_validate(fields | changes)


def test_production_accepts_random_internal_keys_and_token() -> None:
    settings = production(internal_keys=(GOOD, OTHER), metrics_token="m" + OTHER[::-1])
    assert settings.accepted_internal_keys() == (GOOD, OTHER)
    assert settings.internal_key() == GOOD


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ((), "STEADYPAY_INTERNAL_KEYS must list at least one"),
        (("short-key",), "at least 32"),
        ((GOOD, "x" * 40), r"STEADYPAY_INTERNAL_KEYS\[1\].*random"),  # not random
        ((ADMIN,), "must not be the admin key"),
        ((derived_internal_key(ADMIN),), "derived from it"),
    ],
)
def test_production_refuses_unsafe_internal_keys(keys: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        production(internal_keys=keys)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short", "STEADYPAY_METRICS_TOKEN must be a random secret"),
        (ADMIN, "must differ"),
        (GOOD, "must differ"),
    ],
)
def test_production_refuses_an_unsafe_metrics_token(token: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        production(metrics_token=token)


def test_production_never_derives_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEADYPAY_INTERNAL_KEYS", raising=False)
    with pytest.raises(ValidationError, match="STEADYPAY_INTERNAL_KEYS"):
        Settings(env=Environment.PRODUCTION, database_url=URL, admin_key=ADMIN)


def test_outside_production_one_key_is_derived_from_the_admin_key() -> None:
    settings = Settings(env=Environment.TEST, admin_key=ADMIN)
    expected = hmac.new(ADMIN.encode(), b"steadypay internal v1", hashlib.sha256).hexdigest()
    assert settings.accepted_internal_keys() == (expected,)
    assert settings.internal_key() == expected != ADMIN
    assert Settings(env=Environment.DEVELOPMENT, admin_key=ADMIN).internal_key() == expected
    with pytest.raises(RuntimeError, match="STEADYPAY_INTERNAL_KEYS"):
        Settings(env=Environment.TEST).internal_key()
    configured = Settings(env=Environment.TEST, admin_key=ADMIN, internal_keys=(GOOD,))
    assert configured.accepted_internal_keys() == (GOOD,)  # configured keys replace it


def test_keys_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYPAY_INTERNAL_KEYS", json.dumps([OTHER, GOOD]))
    monkeypatch.setenv("STEADYPAY_METRICS_TOKEN", "scrape-" + GOOD)
    settings = Settings(env=Environment.TEST)
    assert settings.accepted_internal_keys() == (OTHER, GOOD)
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "scrape-" + GOOD
    assert GOOD not in repr(settings)  # secrets stay masked


@pytest.mark.parametrize("bad", ["has space", "", "tab\there", "caf\u00e9"])
def test_a_key_must_be_usable_as_a_bearer_token(bad: str) -> None:
    with pytest.raises(ValidationError, match="bearer token"):
        Settings(env=Environment.TEST, internal_keys=(bad,))
    with pytest.raises(ValidationError, match="bearer token"):
        Settings(env=Environment.TEST, metrics_token=bad)


def test_service_keys_accept_every_listed_key_and_nothing_else() -> None:
    keys = ServiceKeys([GOOD, OTHER])
    assert keys.accepts(GOOD)
    assert keys.accepts(OTHER)
    assert not keys.accepts(GOOD[:-1])
    assert not keys.accepts("")
    assert GOOD not in repr(keys)
    with pytest.raises(RuntimeError, match="STEADYPAY_INTERNAL_KEYS"):
        ServiceKeys([])


def test_metrics_refusal() -> None:
    assert metrics_refusal("127.0.0.1", None, None) is None
    assert metrics_refusal("::1", None, None) is None
    assert isinstance(metrics_refusal("10.0.0.5", None, None), PermissionDenied)
    assert isinstance(metrics_refusal(None, None, None), PermissionDenied)
    # with a token, loopback is no pass (a local reverse proxy makes everyone loopback)
    assert isinstance(metrics_refusal("127.0.0.1", None, "t0ken"), AuthenticationError)
    assert isinstance(metrics_refusal("10.0.0.5", "Bearer wrong", "t0ken"), AuthenticationError)
    assert isinstance(metrics_refusal("10.0.0.5", "Basic t0ken", "t0ken"), AuthenticationError)
    assert metrics_refusal("10.0.0.5", "Bearer t0ken", "t0ken") is None
    assert metrics_refusal("10.0.0.5", "bearer t0ken", "t0ken") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("localhost", False),  # a name is not an address
        ("testclient", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _call(app: Any, remote: str, authorization: str | None = None) -> tuple[str, bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "REMOTE_ADDR": remote,
               "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "1",
               "wsgi.url_scheme": "http"}  # fmt: skip
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return seen[0], body


def test_the_monitors_metrics_port_follows_the_same_rule() -> None:
    registry = CollectorRegistry()
    Counter("steadypay_probe", "a test counter", registry=registry).inc()
    open_app = guarded_metrics_app(registry, token=None)
    assert _call(open_app, "127.0.0.1")[0].startswith("200")
    status, body = _call(open_app, "10.0.0.5")
    assert status == "403 Forbidden"
    assert json.loads(body)["error"]["code"] == "forbidden"
    token_app = guarded_metrics_app(registry, token=GOOD)
    assert _call(token_app, "127.0.0.1")[0] == "401 Unauthorized"
    assert _call(token_app, "10.0.0.5", "Bearer nope")[0] == "401 Unauthorized"
    status, body = _call(token_app, "10.0.0.5", f"Bearer {GOOD}")
    assert status.startswith("200")
    assert b"steadypay_probe_total 1.0" in body

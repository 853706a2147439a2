"""RED, ledger and dependency metrics after a scripted run, labelled by route template."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.api_client import Api


async def _samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


async def test_metrics_after_a_scripted_run(api: Api) -> None:
    before = await _samples(api)
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    assert (await api.transfer(a["id"], b["id"], "2.50")).status_code == 201
    assert (await api.transfer(a["id"], b["id"], "999.00")).status_code == 422
    assert (await api.get(f"/v1/wallets/{a['id']}")).status_code == 200
    assert (await api.get("/v1/no-such-route")).status_code == 404
    after = await _samples(api)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    post = {"service": "api", "route": "/v1/transfers", "method": "POST"}
    assert delta("steadypay_http_requests_total", **post, status="201") == 1
    assert delta("steadypay_http_requests_total", **post, status="422") == 1
    wallet = {
        "service": "api",
        "route": "/v1/wallets/{wallet_id}",
        "method": "GET",
        "status": "200",
    }
    assert delta("steadypay_http_requests_total", **wallet) == 1
    assert delta("steadypay_http_requests_total", service="api", route="unmatched",
                 method="GET", status="404") == 1  # fmt: skip
    assert delta("steadypay_http_request_duration_seconds_count", service="api",
                 route="/v1/transfers") == 2  # fmt: skip
    assert delta("steadypay_transfers_total", type="transfer", status="completed") == 1
    assert delta("steadypay_transfers_total", type="transfer", status="failed") == 1
    assert delta("steadypay_transfer_amount_minor_total", currency="USD", type="transfer") == 250
    assert delta("steadypay_transfer_amount_minor_total", currency="USD", type="deposit") == 1000
    # route labels are templates, never raw ids
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not [k for k in after if any(uuid_like.search(v) for _, v in k[1])]
    # the resilience toolkit reports the (down) fraud dependency
    names = {name for name, _ in after}
    assert {"steadypay_dependency_calls_total", "steadypay_circuit_breaker_state",
            "steadypay_retry_budget_tokens"} <= names  # fmt: skip

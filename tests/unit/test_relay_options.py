"""The outbox relay's options: their defaults are the STEADYPAY_OUTBOX_* settings' defaults."""

from __future__ import annotations

import pytest

from steadypay.bootstrap.relay import relay_options
from steadypay.config import Settings
from steadypay.outbox import RelayOptions


def test_the_default_options_are_what_default_settings_give() -> None:
    assert relay_options(Settings()) == RelayOptions()


def test_settings_fill_the_options() -> None:
    settings = Settings(outbox_batch_size=7, outbox_lease_s=12.5, outbox_max_age_hours=1.5)
    options = relay_options(settings)
    assert (options.batch_size, options.lease_s, options.max_age_s) == (7, 12.5, 5400.0)


@pytest.mark.parametrize(
    "bad", [{"batch_size": 0}, {"lease_s": 0}, {"backoff_base_s": -1}, {"idle_sleep_s": 0}]
)
def test_options_that_cannot_work_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RelayOptions(**bad)  # type: ignore[arg-type]

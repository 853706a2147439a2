"""The notification service's tunables come from its settings, with one set of defaults."""

from __future__ import annotations

from steadypay.bootstrap.notifications import notification_options
from steadypay.config import Environment, Settings
from steadypay.notifications.options import NotificationOptions


def test_the_settings_defaults_are_the_options_defaults() -> None:
    assert notification_options(Settings(env=Environment.TEST)) == NotificationOptions()


def test_each_webhook_setting_reaches_its_option() -> None:
    settings = Settings(
        env=Environment.TEST,
        webhook_max_age_hours=2,
        webhook_backoff_base_s=0.5,
        webhook_backoff_cap_s=60,
        webhook_timeout_s=3,
        webhook_rotation_window_hours=1,
    )
    options = notification_options(settings)
    assert (options.max_age_s, options.backoff_base_s, options.backoff_cap_s) == (7200, 0.5, 60)
    assert (options.delivery_timeout_s, options.rotation_window_s) == (3, 3600)

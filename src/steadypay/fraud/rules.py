"""The rules engine: ``evaluate(check, facts, rules) -> Verdict``, pure and deterministic.

Each rule that fires adds its points and names itself in ``reasons``; the score is the sum,
capped at 100. The rules, in the order their reasons are listed:

============================  ===============================================================
reason                        fires when
============================  ===============================================================
``amount_band:<name>``        the amount falls in that band and the band has points
``velocity_count:<window>``   the sender's checks in the window, this one included, exceed
                              ``over``
``velocity_sum:<window>``     the sum of those in this currency, this one included, exceeds
                              ``over`` major units
``new_account``               the sender's account is younger than ``new_account_days``
``first_payment_to_receiver`` no check from this sender to this receiver in the last
                              ``receiver_memory_days``
``back_and_forth``            the receiver sent to this sender within the last
                              ``back_and_forth_minutes``
============================  ===============================================================

A rule with 0 points never fires (that is how to switch one off). Thresholds in major units
(bands, sums) are compared in the check's own currency without conversion: ``up_to: 100``
means 100 USD for a USD transfer and 100 JPY for a JPY one.
``<window>`` is written ``30s``, ``1m``, ``1h`` or ``1d``.
"""

from __future__ import annotations

from datetime import timedelta

from steadypay.config.fraud import (
    DEFAULT_BANDS,
    DEFAULT_VELOCITY,
    MAX_SCORE,
    MAX_WINDOW_S,
    AmountBand,
    FraudRules,
    Name,
    Points,
    VelocityRule,
    window_label,
)
from steadypay.fraud.domain import Check, Facts, Verdict

# The rules' configuration lives in steadypay.config.fraud (configuration imports nothing from
# the contexts); these names stay importable from here.
__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_VELOCITY",
    "MAX_SCORE",
    "MAX_WINDOW_S",
    "AmountBand",
    "FraudRules",
    "Name",
    "Points",
    "VelocityRule",
    "evaluate",
    "window_label",
]


def evaluate(check: Check, facts: Facts, rules: FraudRules) -> Verdict:
    """The verdict on ``check`` given what the store knew before it (``facts``)."""
    scale = 10**check.currency.exponent
    fired: list[tuple[str, int]] = []

    band = next(
        b for b in rules.amount_bands if b.up_to is None or check.amount_minor <= b.up_to * scale
    )
    if band.points:
        fired.append((f"amount_band:{band.name}", band.points))

    for rule in rules.velocity:
        if rule.kind == "count":
            value, limit = facts.counts.get(rule.window_s, 0) + 1, rule.over
        else:
            value = facts.sums_minor.get(rule.window_s, 0) + check.amount_minor
            limit = rule.over * scale
        if value > limit and rule.points:
            fired.append((rule.reason, rule.points))

    age = facts.at - check.sender_created_at
    if age < timedelta(days=rules.new_account_days) and rules.new_account_points:
        fired.append(("new_account", rules.new_account_points))

    last_to = facts.last_to_receiver_at
    if (last_to is None or facts.at - last_to > rules.receiver_memory) and (
        rules.first_receiver_points
    ):
        fired.append(("first_payment_to_receiver", rules.first_receiver_points))

    last_from = facts.last_from_receiver_at
    if (
        check.reverse_key is not None
        and last_from is not None
        and facts.at - last_from <= timedelta(minutes=rules.back_and_forth_minutes)
        and rules.back_and_forth_points
    ):
        fired.append(("back_and_forth", rules.back_and_forth_points))

    score = min(MAX_SCORE, sum(points for _, points in fired))
    return Verdict(score, tuple(reason for reason, _ in fired), rules.version)

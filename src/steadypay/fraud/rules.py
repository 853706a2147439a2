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
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from steadypay.fraud.domain import Check, Facts, Verdict

MAX_SCORE = 100
MAX_WINDOW_S = 7 * 86_400

Points = Annotated[int, Field(ge=0, le=MAX_SCORE)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class AmountBand(BaseModel):
    """Amounts up to ``up_to`` major units (inclusive) score ``points``; the last band has no
    upper bound (``up_to: null``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    up_to: Annotated[int, Field(ge=0)] | None
    points: Points


class VelocityRule(BaseModel):
    """Per sender over a rolling window of ``window_s`` seconds: ``count`` fires when the
    number of checks exceeds ``over``; ``sum`` when their total in the check's currency exceeds
    ``over`` major units. The current check is included in both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["count", "sum"]
    window_s: Annotated[int, Field(gt=0, le=MAX_WINDOW_S)]
    over: Annotated[int, Field(ge=0)]
    points: Points

    @property
    def reason(self) -> str:
        return f"velocity_{self.kind}:{window_label(self.window_s)}"


DEFAULT_BANDS = (
    AmountBand(name="low", up_to=100, points=0),
    AmountBand(name="medium", up_to=1_000, points=10),
    AmountBand(name="high", up_to=10_000, points=30),
    AmountBand(name="very_high", up_to=None, points=60),
)
DEFAULT_VELOCITY = (
    VelocityRule(kind="count", window_s=60, over=10, points=30),
    VelocityRule(kind="sum", window_s=3_600, over=20_000, points=40),
)


class FraudRules(BaseModel):
    """Every threshold of the rules engine. Changing any of them should change ``version``,
    which every verdict carries as ``model_version``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)] = "rules-2026.11"
    amount_bands: tuple[AmountBand, ...] = DEFAULT_BANDS
    velocity: tuple[VelocityRule, ...] = DEFAULT_VELOCITY
    new_account_days: Annotated[int, Field(ge=0, le=3_650)] = 7
    new_account_points: Points = 15
    first_receiver_points: Points = 10
    receiver_memory_days: Annotated[int, Field(ge=1, le=3_650)] = 90
    back_and_forth_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 30
    back_and_forth_points: Points = 25

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        bands = self.amount_bands
        if not bands or bands[-1].up_to is not None:
            raise ValueError("amount_bands must end with an open band (up_to: null)")
        bounds = [band.up_to for band in bands[:-1] if band.up_to is not None]
        if len(bounds) != len(bands) - 1:
            raise ValueError("only the last amount band may be open (up_to: null)")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError("amount_bands must have strictly increasing up_to")
        if any(a.points > b.points for a, b in pairwise(bands)):
            raise ValueError("amount band points must not decrease as amounts grow")
        if len({band.name for band in bands}) != len(bands):
            raise ValueError("amount band names must be unique")
        if len({rule.reason for rule in self.velocity}) != len(self.velocity):
            raise ValueError("velocity rules must differ in kind or window")
        return self

    @property
    def windows_s(self) -> tuple[int, ...]:
        """The distinct velocity windows, shortest first: what the history store counts."""
        return tuple(sorted({rule.window_s for rule in self.velocity}))

    @property
    def max_window_s(self) -> int:
        return max(self.windows_s, default=0)

    @property
    def receiver_memory(self) -> timedelta:
        return timedelta(days=self.receiver_memory_days)


def window_label(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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

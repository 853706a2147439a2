"""The fraud rules engine's configuration: :class:`FraudRules` and its parts.

Pure configuration (pydantic models and their validation); what each threshold means and how
a verdict is computed from them is :mod:`steadypay.fraud.rules`, which re-exports these names.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

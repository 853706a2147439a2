"""Test doubles for time and events (the product's clock and events are injectable)."""

from __future__ import annotations

from dataclasses import dataclass, field

from steadypay.resilience.store import State


class FakeClock:
    """Monotonic time that moves only when told to (or when someone sleeps on it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordingEvents:
    transitions: list[tuple[State, State, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def transition(self, dependency: str, old: State, new: State, reason: str) -> None:
        self.transitions.append((old, new, reason))

    def call(self, dependency: str, outcome: str, duration_s: float | None = None) -> None:
        self.calls.append(outcome)

    def budget(self, dependency: str, tokens: float) -> None:
        self.budgets.append(tokens)

    def store_fallback(self, dependency: str, reason: str) -> None:
        self.fallbacks.append(reason)

    @property
    def states(self) -> list[State]:
        return [new for _, new, _ in self.transitions]

"""A time-based sliding window of call outcomes, bucketed so each operation is O(1).

The window spans ``window_s`` seconds in ``buckets`` slots of equal width. Recording adds to the
current slot; time moving on evicts whole slots from running totals (resilience4j's
time-based window). Totals never need a scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowTotals:
    calls: int
    failures: int
    slow: int

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        return self.slow / self.calls if self.calls else 0.0


class SlidingWindow:
    def __init__(self, window_s: float, buckets: int = 10) -> None:
        if window_s <= 0 or buckets < 1:
            raise ValueError("window_s must be > 0 and buckets >= 1")
        self._width = window_s / buckets
        self._n = buckets
        self._epoch = [-1] * buckets  # which bucket index each slot currently holds
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._totals = [0, 0, 0]
        self._head = -1  # newest bucket index seen

    def _advance(self, now: float) -> int:
        index = math.floor(now / self._width)
        if index > self._head:
            # evict every slot that falls out of the window: at most n of them
            start = max(self._head + 1, index - self._n + 1)
            for stale in range(start, index + 1):
                slot = stale % self._n
                if self._epoch[slot] != stale:
                    self._totals[0] -= self._calls[slot]
                    self._totals[1] -= self._failures[slot]
                    self._totals[2] -= self._slow[slot]
                    self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
                    self._epoch[slot] = stale
            self._head = index
        return index % self._n

    def record(self, now: float, *, failure: bool, slow: bool) -> WindowTotals:
        slot = self._advance(now)
        self._calls[slot] += 1
        self._totals[0] += 1
        if failure:
            self._failures[slot] += 1
            self._totals[1] += 1
        if slow:
            self._slow[slot] += 1
            self._totals[2] += 1
        return self.totals(now)

    def totals(self, now: float) -> WindowTotals:
        self._advance(now)
        return WindowTotals(*self._totals)

    def reset(self) -> None:
        self._epoch = [-1] * self._n
        self._calls = [0] * self._n
        self._failures = [0] * self._n
        self._slow = [0] * self._n
        self._totals = [0, 0, 0]
        self._head = -1

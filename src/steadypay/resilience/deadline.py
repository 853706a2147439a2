"""An absolute deadline on the injectable monotonic clock, shared by every attempt of a call.

It travels to the callee as ``X-Deadline-Ms`` (milliseconds left when the attempt is sent):
relative, like gRPC's ``grpc-timeout``, so clocks of the two hosts need not agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from steadypay.resilience.clock import Clock

DEADLINE_HEADER = "X-Deadline-Ms"


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float
    clock: Clock

    @classmethod
    def after(cls, seconds: float, clock: Clock) -> Deadline:
        return cls(clock.monotonic() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

"""Integer time for CP-SAT: one unit per problem, durations rounded up.

The unit is the power of ten just below horizon / 1e6 seconds (so a schedule has about a million
units of resolution). Durations are rounded *up* to whole units, so a schedule that is valid in
units stays valid when each op and transfer is given back its exact duration in seconds: starts are
`units * unit`, ends `start + exact duration` <= the rounded end. Rounding can only lengthen the
model's schedule, by at most one unit per op or transfer on the critical path; lower bounds are
reported net of that slack (see `bound_seconds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimc.mapping.problem import MappingProblem

RESOLUTION = 1_000_000
_REL = 1e-9  # a duration within 1e-9 of a whole number of units is that number (float noise)


@dataclass(frozen=True)
class TimeScale:
    unit_s: float

    @classmethod
    def for_problem(cls, problem: MappingProblem) -> TimeScale:
        """A power-of-ten unit giving the serial horizon about RESOLUTION units."""
        horizon = sum(max((c.latency_s for (o, _), c in problem.costs.items() if o == op.name), default=0.0)
                      for op in problem.ops)
        horizon += sum(max((lk.time_s(t.size_bytes) for lk in problem.links.values()), default=0.0)
                       for t in problem.tensors.values())
        if horizon <= 0:
            return cls(1e-9)
        return cls(10.0 ** math.floor(math.log10(horizon / RESOLUTION)))

    def units(self, seconds: float) -> int:
        """Duration in units, rounded up (never shorter than the real duration)."""
        x = seconds / self.unit_s
        return max(0, math.ceil(x - _REL * max(1.0, x)))

    def exact(self, seconds: float) -> bool:
        """Whether `seconds` is a whole number of units (so rounding added nothing)."""
        return abs(self.units(seconds) * self.unit_s - seconds) <= 1e-9 * max(seconds, self.unit_s)

    def seconds(self, units: int) -> float:
        return units * self.unit_s

    def bound_seconds(self, bound_units: float, slack_units: int) -> float:
        """A lower bound in seconds from a bound of the rounded model (minus the rounding slack)."""
        return max(0.0, (math.floor(bound_units + 1e-9) - slack_units) * self.unit_s)

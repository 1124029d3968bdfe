"""When two times are the same: one relative tolerance for the checker and the schedulers.

Times are sums of float durations, so an interval that should end exactly where the next one
starts may overlap it by float noise. The checker accepts what is within `tol` of touching, and the
schedulers (bandwidth profile, stitchers) treat the same margin as no overlap, so nothing they
place can be rejected by the checker for noise. Relative 1e-9, never below 1e-15 (1e-9 of a
microsecond): far above float noise, far below any modelled duration (nanoseconds and up) and,
in CP-SAT's integer time units (about 1e6 per horizon), below one unit.
"""

from __future__ import annotations

import math

REL_TOL = 1e-9
_FLOOR = 1e-6  # the magnitude below which the tolerance stops shrinking (seconds or units)
_ULPS = 4  # a difference of two rounded times (each a shifted sum) is off by a few ulps of them


def tol(*xs: float) -> float:
    """The noise margin for comparing the times `xs` (finite)."""
    return REL_TOL * max(_FLOOR, *(abs(x) for x in xs)) if xs else REL_TOL


def duration_tol(need: float, *times: float) -> float:
    """The noise margin for a duration `end - start` compared with `need`: the relative tolerance
    of `need` plus a few ulps of the times it was subtracted from. Sized by the duration alone, a
    1 us transfer at t = 32 s (end - start = 9.99999997e-07 by rounding) would be short by noise."""
    return tol(need) + _ULPS * max((math.ulp(x) for x in times), default=0.0)


def before(a: float, b: float) -> bool:
    """a < b by more than the tolerance."""
    return a < b - tol(a, b)


def close(a: float, b: float) -> bool:
    """a == b within the tolerance."""
    return abs(a - b) <= tol(a, b)


def inner(a: float, b: float) -> tuple[float, float]:
    """[a, b) shrunk by the margin at both ends: an interval overlaps [a, b) when it starts before
    the second and ends after the first, so intervals that only touch (up to noise) do not. An
    infinite end takes no part in the margin."""
    margin = tol(*(x for x in (a, b) if math.isfinite(x)))
    return a + margin, b - margin

"""What the pieces stitched so far hold: busy intervals per device, directed link and scratchpad
address range, and draws on shared memory bandwidth.

One object, shared by the rigid stitch (stitch.py, a piece at one common offset) and the
overlapped placement (overlapped.py, each op and transfer on its own), so both read and write the
machine through the same rules: when a resource is free, and when a bandwidth draw fits.
"""

from __future__ import annotations

import bisect
import math

from pimc.mapping.bandwidth import Contention, Draws, Profile
from pimc.mapping.problem import MappingProblem
from pimc.mapping.tolerance import inner


class Busy:
    """Intervals placed on one resource, sorted by end, each with an address range (or the whole)."""

    def __init__(self):
        self.ends: list[float] = []
        self.items: list[tuple[float, float, int, int]] = []  # end, start, lo, hi

    def add(self, start: float, end: float, lo: int = 0, hi: int = 1) -> None:
        i = bisect.bisect_left(self.ends, end)
        self.ends.insert(i, end)
        self.items.insert(i, (end, start, lo, hi))

    def _live(self, start: float, end: float):
        lo, hi = inner(start, end)
        for e, s, a, b in self.items[bisect.bisect_right(self.ends, lo):]:
            if s < hi:
                yield e, a, b

    def ranges(self, start: float, end: float) -> list[tuple[int, int, float]]:
        """(lo, hi, end) of placed intervals overlapping [start, end) in time."""
        return [(a, b, e) for e, a, b in self._live(start, end)]

    def conflict_end(self, start: float, end: float, lo: int = 0, hi: int = 1) -> float | None:
        """The latest end among placed intervals overlapping [start, end) x [lo, hi), or None."""
        worst = None
        for e, a, b in self._live(start, end):
            if a < hi and lo < b:
                worst = e if worst is None else max(worst, e)
        return worst


class Resources:
    """Busy intervals by resource key (("device", d), ("link", src, dst), ("memory", m)) and the
    bandwidth profile of the memories whose bandwidth is shared (None when none is)."""

    def __init__(self, problem: MappingProblem):
        self.busy: dict[tuple, Busy] = {}
        self.contention = Contention.of(problem)
        self.bandwidth = None if self.contention is None else Profile(self.contention)

    def get(self, key: tuple) -> Busy | None:
        return self.busy.get(key)

    def hold(self, key: tuple, start: float, end: float, lo: int = 0, hi: int = 1) -> None:
        """Mark [start, end) (x [lo, hi) of a scratchpad) taken on resource `key`."""
        self.busy.setdefault(key, Busy()).add(start, end, lo, hi)

    def op_draws(self, op: str, device: str) -> Draws:
        return () if self.contention is None else self.contention.op(op, device)

    def transfer_draws(self, tensor: str, src: str, dst: str) -> Draws:
        return () if self.contention is None else self.contention.transfer(tensor, src, dst)

    def draw(self, start: float, length: float, draws: Draws) -> None:
        if draws:
            self.bandwidth.add(start, length, draws)

    def earliest(self, key: tuple, start: float, length: float, draws: Draws) -> float:
        """The earliest time >= start at which resource `key` is free for `length` and `draws` fit
        the memories' bandwidth; every time skipped fails one of the two."""
        busy = self.busy.get(key)
        moved = True
        while moved:
            moved = False
            end = None if busy is None else busy.conflict_end(start, start + length)
            if end is not None:
                start, moved = max(end, math.nextafter(start, math.inf)), True
            if draws:
                later = self.bandwidth.earliest(start, length, draws)
                if later > start:
                    start, moved = later, True
        return start

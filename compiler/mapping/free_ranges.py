"""Where a scratchpad has room, and since when each byte of it has been free.

The eviction heuristic (evict.py) places a tensor at the address whose range was freed soonest, so
that its load can start early. Asking that of a plain list of every range ever freed costs a pass
over the list per candidate address, quadratic in the ranges freed (6 of 10 s of a 32-layer
scratchpad compile). `FreedRanges` keeps instead, per address, the latest time a range covering it
was freed, as sorted pieces of equal value (neighbours that come from one freed range coalesce),
and the sorted ends of the freed ranges (the addresses worth trying, besides the starts of the free
gaps); `soonest` then slides one window over the pieces of each free gap.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator, Sequence

_NEVER_FREED = (-math.inf, 0)
"""A piece's value before any range covering it is freed (below every (time, -sequence) key)."""


def free_gaps(taken: Sequence[tuple[int, int]], size: int, capacity: float) -> Iterator[tuple[int, int]]:
    """The address ranges [a, b) of at least `size` bytes below `capacity` (math.inf: no end) that
    no range of `taken` (sorted by start) overlaps, lowest first. A taken range of no bytes at x splits a gap at x: a
    tensor may end or begin there but not straddle it."""
    cur = 0
    for lo, hi in taken:
        if lo >= cur and min(lo, capacity) - cur >= size:
            yield cur, min(lo, capacity)
        cur = max(cur, hi)
    if capacity - cur >= size:
        yield cur, capacity


class FreedRanges:
    """Since when each byte range of one memory has been free: per byte, the latest time given
    for a freed range covering it (ranges are freed again and again as tensors come and go)."""

    def __init__(self):
        self._starts: list[int] = [0]  # piece i covers [_starts[i], _starts[i + 1]); the last one on to infinity
        self._keys: list[tuple[float, int]] = [_NEVER_FREED]  # (time, -sequence) of the range that set it
        self._ends: list[int] = []  # distinct ends of the freed ranges, sorted
        self._sequence = 0

    def free(self, offset: int, size: int, at: float) -> None:
        """[offset, offset + size) is free from `at` on (a byte keeps the later of its times)."""
        end = offset + size
        i = bisect.bisect_left(self._ends, end)
        if i == len(self._ends) or self._ends[i] != end:
            self._ends.insert(i, end)
        if size <= 0:
            return
        # Equal times: the range freed first keeps the byte (a stable maximum, as a scan in order).
        self._sequence += 1
        key = (at, -self._sequence)
        i, j = self._cut(offset), self._cut(end)
        keys = self._keys
        for k in range(i, j):
            if key > keys[k]:
                keys[k] = key
        self._coalesce(max(i - 1, 0), min(j + 1, len(keys)))

    def free_from(self, offset: int, size: int) -> float:
        """When all of [offset, offset + size) is free: the latest time of its bytes (0.0 if none
        was ever freed; 0.0 for no bytes)."""
        if size <= 0:
            return 0.0
        i = bisect.bisect_right(self._starts, offset) - 1
        j = bisect.bisect_left(self._starts, offset + size)
        return _time(max(self._keys[i:j]))

    def candidates(self, a: int, b: int, size: int) -> list[int]:
        """The addresses worth trying for `size` bytes in the free gap [a, b): its start and the
        ends of freed ranges inside it where the tensor still fits."""
        ends = self._ends
        return [a, *ends[bisect.bisect_right(ends, a):bisect.bisect_right(ends, b - size)]]

    def soonest(self, gaps: Iterator[tuple[int, int]], size: int) -> int | None:
        """Among the candidates of the free gaps (each of `size` bytes or more), the address whose
        `size` bytes were all freed soonest; ties go to the lowest address. None if no gap.

        Per gap, one sliding maximum over the pieces: each piece enters and leaves the window
        once, so a call costs the pieces and candidates of the gaps, not their product."""
        if size <= 0:  # no bytes: free from 0.0 everywhere, so the lowest
            return next(iter(gaps), (None,))[0]
        best_time, best = math.inf, None
        starts, keys, last = self._starts, self._keys, len(self._starts) - 1
        for a, b in gaps:
            offsets = self.candidates(a, b, size)
            nxt = bisect.bisect_right(starts, a) - 1  # the next piece to enter the window
            window: deque[int] = deque()  # pieces in the window, their keys falling
            for off in offsets:
                while nxt <= last and starts[nxt] < off + size:
                    while window and keys[window[-1]] <= keys[nxt]:
                        window.pop()
                    window.append(nxt)
                    nxt += 1
                while window[0] < last and starts[window[0] + 1] <= off:  # that piece ends before off
                    window.popleft()
                free = keys[window[0]][0]
                if free == -math.inf:
                    free = 0.0
                if best is None or free < best_time:
                    best_time, best = free, off
        return best

    def _cut(self, x: int) -> int:
        """The index of the piece starting at x, splitting the piece that holds x if needed."""
        i = bisect.bisect_right(self._starts, x) - 1
        if self._starts[i] == x:
            return i
        self._starts.insert(i + 1, x)
        self._keys.insert(i + 1, self._keys[i])
        return i + 1

    def _coalesce(self, i: int, j: int) -> None:
        """Merge neighbouring pieces of equal key among pieces i..j-1."""
        starts, keys = self._starts[i:j], self._keys[i:j]
        kept = [k for k in range(len(keys)) if k == 0 or keys[k] != keys[k - 1]]
        self._starts[i:j] = [starts[k] for k in kept]
        self._keys[i:j] = [keys[k] for k in kept]

    def pieces(self) -> list[tuple[int, float]]:
        """(start, time) of each piece, lowest first; time -inf where nothing was freed (for tests)."""
        return [(s, k[0]) for s, k in zip(self._starts, self._keys)]


def _time(key: tuple[float, int]) -> float:
    return 0.0 if key[0] == -math.inf else key[0]

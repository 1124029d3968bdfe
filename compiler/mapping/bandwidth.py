"""Shared memory bandwidth: what each op and transfer draws from each memory, and where it fits.

The model (conservative): an op on device d draws, for its whole interval, the average rate it
needs from d's memory -- its cost's off-chip bytes / its latency, capped at the memory's bandwidth
-- and a transfer draws its bytes / its duration from the memories at both ends of its link. At
every instant the draws on a memory must sum to at most its bandwidth (`MappingProblem.
memory_bandwidth`). Ops are never slowed down by contention, they are *delayed* until their draw
fits: two ops that would each stream at 60% of the bandwidth run one after the other, although a
real memory controller would share the bandwidth and finish both at 120% of one op's time. So, as
long as each op draws its bytes evenly over its interval, a schedule that passes this model never
counts on bandwidth the memory does not have; it may be later than a real run by up to the length
of the overlap given up. Two limits of that average: an op that moves its bytes in bursts (a PUD
GeMV's host reads its results only at the end) may overdraw briefly, and a PUD GeMV's in-DRAM row
commands occupy the channel's banks and command bus without drawing any modelled bytes, so a CPU
op streaming from the same DDR4 may overlap it more than a real channel allows.

Only memories whose users can together draw more than the bandwidth are *shared* (a device runs
one op at a time and a directed link carries one transfer at a time, so each user's peak draw is
the most it adds at any instant): on the others the limit is implied, and no solver adds anything
for them (single-device targets keep their schedules).

Solvers work with integer draws (`Contention`: bytes/s for the heuristics, MB/s for CP-SAT, finer
for memories slower than 1 GB/s),
rounded up, and integer capacities rounded down, so a schedule that fits in integers fits exactly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from pimc.errors import ScheduleError
from pimc.mapping.problem import MappingProblem
from pimc.mapping.tolerance import before, inner

__all__ = ["Contention", "Profile", "op_rate", "transfer_rate", "shared_memories"]

_SLACK = 1e-9  # relative: a sum of draws this close to the bandwidth fits (float noise)

Draws = tuple[tuple[str, int], ...]
"""((memory, integer draw), ...) of one op or transfer, on shared memories only."""


def op_rate(problem: MappingProblem, op: str, device: str) -> dict[str, float]:
    """{memory: bytes/s} that `op` on `device` draws (empty if it moves nothing or takes no time)."""
    mem = problem.memory_of[device]
    bw = problem.memory_bandwidth.get(mem)
    cost = problem.costs[(op, device)]
    if bw is None or cost.latency_s <= 0 or cost.offchip_bytes <= 0:
        return {}
    return {mem: min(bw, cost.offchip_bytes / cost.latency_s)}


def transfer_rate(problem: MappingProblem, nbytes: int, src: str, dst: str) -> dict[str, float]:
    """{memory: bytes/s} that moving `nbytes` over link src->dst draws from its two ends."""
    duration = problem.links[(src, dst)].time_s(nbytes)
    if duration <= 0 or nbytes <= 0:
        return {}
    rate = nbytes / duration
    return {m: min(problem.memory_bandwidth[m], rate) for m in (src, dst) if m in problem.memory_bandwidth}


def shared_memories(problem: MappingProblem) -> tuple[str, ...]:
    """Memories (sorted) whose devices and links can together draw more than their bandwidth."""
    if not problem.memory_bandwidth:
        return ()
    peak: dict[str, float] = {}
    by_device: dict[tuple[str, str], float] = {}  # (memory, device) -> its largest op draw
    for op, d in problem.costs:
        for m, r in op_rate(problem, op, d).items():
            by_device[(m, d)] = max(by_device.get((m, d), 0.0), r)
    for (m, _), r in by_device.items():
        peak[m] = peak.get(m, 0.0) + r
    largest = max((t.size_bytes for t in problem.tensors.values()), default=0)
    for src, dst in problem.links:  # a transfer's rate grows with its size: the largest tensor's
        for m, r in transfer_rate(problem, largest, src, dst).items():
            peak[m] = peak.get(m, 0.0) + r
    return tuple(sorted(m for m, p in peak.items() if p > problem.memory_bandwidth[m] * (1 + _SLACK)))


MIN_STEPS = 1000
"""Integer steps the slowest shared memory's bandwidth spans at least (rounding error <= 0.1%)."""


@dataclass
class Contention:
    """Integer draws and capacities of the shared memories of a problem, in steps of `unit` bytes/s.
    `of` returns None when no memory is shared, so callers skip the bookkeeping entirely."""

    problem: MappingProblem
    unit: float
    capacity: dict[str, int]
    _ops: dict[tuple[str, str], Draws] = field(default_factory=dict)
    _transfers: dict[tuple[int, str, str], Draws] = field(default_factory=dict)

    @classmethod
    def of(cls, problem: MappingProblem, unit: float = 1.0) -> Contention | None:
        """`unit` is the coarsest step wanted; it shrinks by tens (not below 1 B/s) until the slowest
        shared memory has at least `MIN_STEPS` steps, so rounding never empties a capacity (a zero
        capacity would clamp every draw to zero and lift the limit)."""
        shared = shared_memories(problem)
        if not shared:
            return None
        slowest = min(problem.memory_bandwidth[m] for m in shared)
        while unit > 1.0 and slowest / unit < MIN_STEPS:
            unit /= 10
        capacity = {m: math.floor(problem.memory_bandwidth[m] / unit) for m in shared}
        for m, c in capacity.items():
            if c < 1:
                raise ValueError(f"memory {m!r}: bandwidth {problem.memory_bandwidth[m]} B/s is below 1 B/s")
        return cls(problem, unit, capacity)

    def _units(self, rates: dict[str, float]) -> Draws:
        return tuple((m, min(self.capacity[m], math.ceil(r / self.unit))) for m, r in sorted(rates.items())
                     if m in self.capacity and r > 0)

    def op(self, op: str, device: str) -> Draws:
        key = (op, device)
        if key not in self._ops:
            self._ops[key] = self._units(op_rate(self.problem, op, device))
        return self._ops[key]

    def transfer(self, tensor: str, src: str, dst: str) -> Draws:
        key = (self.problem.tensors[tensor].size_bytes, src, dst)
        if key not in self._transfers:
            self._transfers[key] = self._units(transfer_rate(self.problem, key[0], src, dst))
        return self._transfers[key]


class _Steps:
    """A step function of time: levels[i] holds on [times[i], times[i+1]), 0 before times[0]."""

    def __init__(self):
        self.times: list[float] = []
        self.levels: list[int] = []

    def add(self, a: float, b: float, level: int) -> None:
        if not b > a or level == 0:
            return
        i, j = self._cut(a), self._cut(b)
        for k in range(i, j):
            self.levels[k] += level

    def _cut(self, t: float) -> int:
        i = bisect.bisect_left(self.times, t)
        if i == len(self.times) or self.times[i] != t:
            self.times.insert(i, t)
            self.levels.insert(i, self.levels[i - 1] if i > 0 else 0)
        return i

    def conflict(self, a: float, b: float, room: int) -> float | None:
        """The end of the first segment overlapping [a, b) whose level exceeds `room`, or None."""
        lo, hi = inner(a, b)
        i = max(0, bisect.bisect_right(self.times, lo) - 1)
        while i < len(self.times) and self.times[i] < hi:
            end = self.times[i + 1] if i + 1 < len(self.times) else math.inf
            if end > lo and self.levels[i] > room:
                return end
            i += 1
        return None


class Profile:
    """The draws placed so far on each shared memory; finds where more fit."""

    def __init__(self, contention: Contention):
        self.c = contention
        self.steps = {m: _Steps() for m in contention.capacity}

    def earliest(self, start: float, duration: float, draws: Draws) -> float:
        """The earliest time >= start at which an interval of `duration` drawing `draws` fits."""
        if not duration > 0:
            return start
        return self.earliest_segments(start, [(m, 0.0, duration, d) for m, d in draws])

    def segments(self, group: Iterable[tuple[float, float, Draws]]) -> list[tuple[str, float, float, int]]:
        """The summed draws of a group of intervals (a, b, draws) as (memory, a, b, level) segments;
        ScheduleError if the group alone overdraws a memory."""
        own = {m: _Steps() for m in self.steps}
        for a, b, draws in group:
            for m, d in draws:
                own[m].add(a, b, d)
        out = [(m, own[m].times[i], own[m].times[i + 1], own[m].levels[i])
               for m in sorted(own) for i in range(len(own[m].times) - 1) if own[m].levels[i] > 0
               and before(own[m].times[i], own[m].times[i + 1])]  # not noise
        for m, a, _, level in out:
            if level > self.c.capacity[m]:
                raise ScheduleError(f"memory {m!r}: a group of ops and transfers draws {level * self.c.unit:.6g} "
                                    f"bytes/s at {a} s by itself, more than its bandwidth")
        return out

    def earliest_segments(self, start: float, segments: list[tuple[str, float, float, int]]) -> float:
        """The smallest offset >= start at which every segment (memory, a, b, level), shifted by it,
        fits beside what is placed. Every offset skipped leaves a segment over a placed one with no
        room for it (sliding right, it overlaps that one until its start passes that one's end)."""
        moved = True
        while moved:
            moved = False
            for m, a, b, level in segments:
                end = self.steps[m].conflict(a + start, b + start, self.c.capacity[m] - level)
                if end is not None:  # (nextafter: progress even if end - a rounds back to start)
                    start, moved = max(end - a, math.nextafter(start, math.inf)), True
        return start

    def add(self, start: float, duration: float, draws: Draws) -> None:
        for m, d in draws:
            self.steps[m].add(start, start + duration, d)

    def remove(self, start: float, duration: float, draws: Draws) -> None:
        """Undo `add` (integer levels: exact)."""
        for m, d in draws:
            self.steps[m].add(start, start + duration, -d)

"""HEFT-style list scheduling: the fast baseline and fallback for the CP-SAT mapper.

Ops are taken by decreasing upward rank; each goes to the device that finishes it first,
counting the transfers its inputs need over (one-at-a-time, directed) links. Tensors are then
given first-fit addresses. There is no eviction or spilling in this heuristic: if the live
tensors do not fit a memory, it raises ScheduleError rather than producing a wrong schedule.
Ops and transfers start no earlier than their draws on shared memory bandwidth fit (bandwidth.py),
so a device's finish time counts the wait for bandwidth.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence

from pimc.errors import ScheduleError
from pimc.mapping.bandwidth import Contention, Profile
from pimc.mapping.free_ranges import free_gaps
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer

__all__ = ["heft_placement", "list_schedule", "upward_ranks"]


def upward_ranks(problem: MappingProblem, devices: Sequence[str]) -> dict[str, float]:
    """rank(op) = mean latency over capable devices + max over successors of (mean transfer
    time of the tensors on that edge + rank(successor)). Mean transfer is over all links."""
    links = [problem.links[k] for k in sorted(problem.links)]
    g = problem.graph

    def mean_comm(tensors: list[str]) -> float:
        if not links:
            return 0.0
        size = sum(problem.tensors[t].size_bytes for t in tensors)
        return sum(lk.time_s(size) for lk in links) / len(links)

    rank: dict[str, float] = {}
    for op in reversed(problem.ops):
        lat = [problem.costs[(op.name, d)].latency_s for d in devices if (op.name, d) in problem.costs]
        own = sum(lat) / len(lat) if lat else 0.0
        succ = [mean_comm(g.edges[op.name, s]["tensors"]) + rank[s]
                for s in sorted(g.successors(op.name), key=problem.op_index.__getitem__)]
        rank[op.name] = own + max(succ, default=0.0)
    return rank


def list_schedule(problem: MappingProblem, devices: Sequence[str] | None = None) -> Schedule:
    """Schedule every op on one of `devices` (default: all). Deterministic: ties go to the
    earlier op in problem order and the earlier device in `devices` order."""
    devs = tuple(problem.devices if devices is None else devices)
    for d in devs:
        if d not in problem.memory_of:
            raise ScheduleError(f"unknown device {d!r}; problem devices: {list(problem.devices)}")
    for op in problem.ops:
        if not any((op.name, d) in problem.costs for d in devs):
            raise ScheduleError(f"no device among {list(devs)} can run op {op.name!r} ({op.kind})")

    slots, transfers, home = _heft(problem, devs)
    makespan = max((s.end_s for s in slots.values()), default=0.0)
    residency = _residencies(problem, slots, transfers, home, makespan)
    residency = _assign_offsets(problem, residency)
    transfers.sort(key=lambda t: (t.start_s, t.src_memory, t.dst_memory, t.tensor))
    return Schedule(slots=slots, residency=tuple(residency), transfers=tuple(transfers),
                    solver="list", status="heuristic", objective=makespan, bound=None, gap=None)


def heft_placement(problem: MappingProblem, devices: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """HEFT's (op, device) choices in start-time order, without placing tensors in memory."""
    devs = tuple(problem.devices if devices is None else devices)
    slots = _heft(problem, devs)[0]
    order = problem.op_index
    return [(s.op, s.device) for s in sorted(slots.values(), key=lambda s: (s.start_s, order[s.op]))]


def _heft(problem: MappingProblem, devs: tuple[str, ...]):
    """HEFT timing: slots, transfers and each tensor's home memory."""
    rank = upward_ranks(problem, devs)
    order = problem.op_index
    g = problem.graph

    dev_free = {d: 0.0 for d in devs}
    link_free: dict[tuple[str, str], float] = {}
    home: dict[str, str] = dict(problem.home)  # tensor -> memory holding its original copy
    avail: dict[tuple[str, str], float] = {(t, m): 0.0 for t, m in problem.home.items()}
    slots: dict[str, OpSlot] = {}
    transfers: list[Transfer] = []
    contention = Contention.of(problem)
    bandwidth = None if contention is None else Profile(contention)

    pending = {op.name: g.in_degree(op.name) for op in problem.ops}
    ready = [(-rank[n], order[n], n) for n, k in pending.items() if k == 0]
    heapq.heapify(ready)
    while ready:
        name = heapq.heappop(ready)[2]
        op = problem.op_by_name[name]
        best = None
        for d in devs:
            if (name, d) not in problem.costs:
                continue
            trial = _try_device(problem, op, d, dev_free[d], link_free, home, avail, bandwidth)
            if trial is not None and (best is None or trial[0] < best[0]):
                best = trial + (d,)
        if best is None:
            raise ScheduleError(
                f"op {name!r}: no device among {list(devs)} can receive its inputs "
                f"(missing link between memories)")
        start, new_transfers, d = best[1], best[2], best[3]
        end = start + problem.costs[(name, d)].latency_s
        mem = problem.memory_of[d]
        slots[name] = OpSlot(name, d, start, end)
        dev_free[d] = end
        if bandwidth is not None:
            bandwidth.add(start, problem.costs[(name, d)].latency_s, contention.op(name, d))
            for tr in new_transfers:
                bandwidth.add(tr.start_s, problem.links[(tr.src_memory, tr.dst_memory)].time_s(tr.bytes),
                              contention.transfer(tr.tensor, tr.src_memory, tr.dst_memory))
        for tr in new_transfers:
            transfers.append(tr)
            link_free[(tr.src_memory, tr.dst_memory)] = tr.end_s
            avail[(tr.tensor, tr.dst_memory)] = tr.end_s
        for t in op.inputs:
            if t not in home:  # first touch of an input/weight/state: it lives here from time 0
                home[t] = mem
                avail[(t, mem)] = 0.0
        for t in op.outputs:
            home[t] = mem
            avail[(t, mem)] = end
        for s in g.successors(name):
            pending[s] -= 1
            if pending[s] == 0:
                heapq.heappush(ready, (-rank[s], order[s], s))
    return slots, transfers, home


def _try_device(problem, op, d, free, link_free, home, avail, bandwidth=None):
    """(finish, start, transfers) for op on device d, or None if an input cannot reach it.
    With a bandwidth profile, the transfers are placed in it while trying and taken out again."""
    tried: list[tuple[float, float, tuple]] = []
    try:
        return _try_placed(problem, op, d, free, link_free, home, avail, bandwidth, tried)
    finally:
        for a, length, draws in tried:
            bandwidth.remove(a, length, draws)


def _try_placed(problem, op, d, free, link_free, home, avail, bandwidth, tried):
    mem = problem.memory_of[d]
    start = free
    lf: dict[tuple[str, str], float] = {}
    new: list[Transfer] = []
    for t in dict.fromkeys(op.inputs):
        if d in problem.resident_devices and problem.tensors[t].kind == "weight" and home.get(t, mem) != mem:
            return None  # a resident device reads its weights in place
        if t not in home:
            continue  # unplaced input/weight/state: it will be homed in this memory at time 0
        if (t, mem) in avail:
            start = max(start, avail[(t, mem)])
            continue
        src = home[t]
        link = problem.links.get((src, mem))
        if link is None:
            return None
        key = (src, mem)
        nbytes = problem.tensors[t].size_bytes
        t0 = max(avail[(t, src)], lf.get(key, link_free.get(key, 0.0)))
        length = link.time_s(nbytes)
        if bandwidth is not None:
            draws = bandwidth.c.transfer(t, src, mem)
            t0 = bandwidth.earliest(t0, length, draws)
            bandwidth.add(t0, length, draws)
            tried.append((t0, length, draws))
        t1 = t0 + length
        lf[key] = t1
        new.append(Transfer(t, src, mem, t0, t1, nbytes))
        start = max(start, t1)
    for t in op.outputs:  # a state updated in place must be written where it lives
        if t in home and home[t] != mem:
            return None
    length = problem.costs[(op.name, d)].latency_s
    if bandwidth is not None:
        start = bandwidth.earliest(start, length, bandwidth.c.op(op.name, d))
    finish = start + length
    return finish, start, new


def _residencies(problem, slots, transfers, home, makespan) -> list[Residency]:
    """One residency per (tensor, memory) copy, spanning its writes, reads and outgoing transfers."""
    first: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}

    def touch(t: str, m: str, a: float, b: float) -> None:
        first[(t, m)] = min(first.get((t, m), a), a)
        last[(t, m)] = max(last.get((t, m), b), b)

    for s in slots.values():
        m = problem.memory_of[s.device]
        for t in (*problem.op_by_name[s.op].inputs, *problem.op_by_name[s.op].outputs):
            touch(t, m, s.start_s, s.end_s)
    for tr in transfers:
        touch(tr.tensor, tr.src_memory, tr.start_s, tr.end_s)
        touch(tr.tensor, tr.dst_memory, tr.start_s, tr.end_s)

    out: list[Residency] = []
    for t in problem.tensors.values():
        if t.name not in home:
            continue  # not referenced by any op
        h = home[t.name]
        for m in sorted({m for (tn, m) in first if tn == t.name}, key=lambda m: (m != h, m)):
            a, b = first[(t.name, m)], last[(t.name, m)]
            if m == h:
                if t.kind in ("input", "weight", "state"):
                    a = 0.0
                if t.kind in ("weight", "state", "output"):
                    b = makespan
            out.append(Residency(t.name, m, a, b, None, t.size_bytes))
    return out


def _peak(intervals: list[tuple[float, float, int]]) -> int:
    events = sorted([(a, 1, n) for a, b, n in intervals if b > a]
                    + [(b, 0, -n) for a, b, n in intervals if b > a])
    cur = peak = 0
    for _, _, n in events:  # ends (0) sort before starts (1) at equal times: touching is fine
        cur += n
        peak = max(peak, cur)
    return peak


def lowest_gap(busy: Sequence[tuple[int, int]], size: int) -> int:
    """The lowest offset where `size` bytes fit between the address ranges `busy` (sorted by start)."""
    return next(free_gaps(busy, size, math.inf))[0]


def _assign_offsets(problem, residency: list[Residency]) -> list[Residency]:
    """First-fit addresses per memory, residencies taken by (start, larger first, name); those
    already placed (offset >= 0, e.g. a scratchpad placed while evicting) are kept.

    Linear-time in practice: ended residencies leave a heap, and those that last to the end
    (weights, caches, outputs) are kept as merged address ranges, so a first-fit scan only walks
    the few ranges live at that time."""
    out: list[Residency] = [r for r in residency if r.offset_bytes is not None and r.offset_bytes >= 0]
    for mem in sorted({r.memory for r in residency}):
        cap = problem.capacity_bytes[mem]
        rs = sorted((r for r in residency if r.memory == mem and (r.offset_bytes is None or r.offset_bytes < 0)),
                    key=lambda r: (r.start_s, -problem.tensors[r.tensor].size_bytes, r.tensor))
        last_end = max((r.end_s for r in rs), default=0.0)
        placed: list[tuple[float, float, int, int]] = []  # start, end, offset, size
        ending: list[tuple[float, int]] = []  # heap of (end, index in placed) not known to be over
        to_end: list[list[int]] = []  # merged [lo, hi) of residencies lasting to last_end
        high = 0
        for r in rs:
            size = problem.tensors[r.tensor].size_bytes
            while ending and ending[0][0] <= r.start_s:  # over for this and every later residency
                heapq.heappop(ending)
            if r.end_s > r.start_s and r.start_s < last_end:
                busy = sorted([(lo, hi) for lo, hi in to_end]
                              + [(placed[i][2], placed[i][2] + placed[i][3]) for _, i in ending])
            else:  # empty interval, or at the very end: the exact overlap test on every residency
                busy = sorted((o, o + n) for a, b, o, n in placed if a < r.end_s and r.start_s < b)
            off = lowest_gap(busy, size)
            high = max(high, off + size)
            placed.append((r.start_s, r.end_s, off, size))
            if r.end_s >= last_end and r.end_s > r.start_s:
                _merge_range(to_end, off, off + size)
            else:
                heapq.heappush(ending, (r.end_s, len(placed) - 1))
            out.append(Residency(r.tensor, r.memory, r.start_s, r.end_s, off, r.size_bytes))
        if high > cap:
            peak = _peak([(a, b, n) for a, b, _, n in placed])
            raise ScheduleError(
                f"memory {mem!r} overflows: peak live {peak} bytes (first-fit needs {high}) "
                f"> capacity {cap} bytes; the list scheduler does not evict or spill")
    out.sort(key=lambda r: (r.memory, r.start_s, r.tensor))
    return out


def _merge_range(ranges: list[list[int]], lo: int, hi: int) -> None:
    """Add [lo, hi) to sorted, disjoint, non-touching `ranges`, merging what it overlaps or touches."""
    if hi <= lo:
        return
    i = bisect.bisect_left(ranges, [lo, lo])
    if i > 0 and ranges[i - 1][1] >= lo:
        i -= 1
    j = i
    while j < len(ranges) and ranges[j][0] <= hi:
        lo, hi = min(lo, ranges[j][0]), max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [[lo, hi]]

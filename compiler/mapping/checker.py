"""Independent schedule checker: every solver's output passes through it before use.

It only reads the problem and the schedule (never calls a scheduler), so a bug in a solver
cannot hide itself. Times are compared with the schedulers' relative tolerance of 1e-9 (tolerance.py);
a transfer's duration against its link time also allows a few ulps of its start and end (an
`end - start` far from 0 rounds); intervals that only touch (end == start) do not overlap.

Data flow: every residency needs an origin inside it: the tensor was there at time 0 (inputs,
weights, unwritten state, in one home memory), its producer ran there, or a transfer (copy, spill
or reload) brought it; nothing reads a copy before its origin delivered the data. Weights and
state stay in their home until the end, outputs somewhere until the end, and a resident device's
weights sit in its own memory from time 0.

Bandwidth: on every memory with a bandwidth (`MappingProblem.memory_bandwidth`) the draws of the
ops and transfers running at each instant (bandwidth.op_rate / transfer_rate: average rates, the
model's definition) sum to at most the bandwidth.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import defaultdict

from pimc.errors import ScheduleError
from pimc.mapping.bandwidth import op_rate, transfer_rate
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import Schedule
from pimc.mapping.tolerance import REL_TOL
from pimc.mapping.tolerance import before as _before
from pimc.mapping.tolerance import duration_tol
from pimc.mapping.tolerance import tol as _tol

__all__ = ["check_schedule", "schedule_violations"]

_SHOWN = 5


def _overlapping_neighbours(items, order):
    """Neighbours (a, b) in `order` of intervals that one resource runs one at a time, where b
    starts before a ends."""
    ss = sorted(items, key=order)
    return [(a, b) for a, b in zip(ss, ss[1:]) if _before(b.start_s, a.end_s)]


def _covers(r, a: float, b: float) -> bool:
    return not _before(a, r.start_s) and not _before(r.end_s, b)


def check_schedule(problem: MappingProblem, schedule: Schedule) -> None:
    """Raise ScheduleError (one line: count and the first few violations) if schedule is invalid."""
    v = schedule_violations(problem, schedule)
    if v:
        more = f"; ... and {len(v) - _SHOWN} more" if len(v) > _SHOWN else ""
        raise ScheduleError(f"invalid schedule ({len(v)} violations): " + "; ".join(v[:_SHOWN]) + more)


def _not_finite(schedule: Schedule) -> list[str]:
    """Times that are NaN or infinite, which every later check would silently let through."""
    bad = [f"op {s.op!r} at [{s.start_s}, {s.end_s}]" for s in schedule.slots.values()
           if not (math.isfinite(s.start_s) and math.isfinite(s.end_s))]
    bad += [f"transfer of {t.tensor!r} at [{t.start_s}, {t.end_s}]" for t in schedule.transfers
            if not (math.isfinite(t.start_s) and math.isfinite(t.end_s))]
    bad += [f"residency of {r.tensor!r} at [{r.start_s}, {r.end_s}]" for r in schedule.residency
            if not (math.isfinite(r.start_s) and math.isfinite(r.end_s))]
    return [f"{b}: a time is not finite" for b in bad]


def schedule_violations(problem: MappingProblem, schedule: Schedule) -> list[str]:
    """All violations, in a deterministic order (ops, devices, transfers, memories)."""
    v: list[str] = []
    slots = schedule.slots
    mem_of = problem.memory_of
    v.extend(_not_finite(schedule))
    if v:
        return v  # every comparison below is false for NaN: nothing else can be judged

    # Ops: each exactly once, on a capable device, with the cost-table duration.
    for name, s in slots.items():
        if name != s.op:
            v.append(f"slot key {name!r} holds op {s.op!r}")
        if s.op not in problem.op_by_name:
            v.append(f"unknown op {s.op!r} scheduled")
    for op in problem.ops:
        s = slots.get(op.name)
        if s is None or s.op != op.name:
            v.append(f"op {op.name!r} missing from schedule")
            continue
        if s.device not in mem_of:
            v.append(f"op {op.name!r} on unknown device {s.device!r}")
            continue
        cost = problem.costs.get((op.name, s.device))
        if cost is None:
            v.append(f"op {op.name!r} on device {s.device!r} that cannot run it")
            continue
        if s.start_s < 0 or s.end_s < 0:
            v.append(f"op {op.name!r} has negative time [{s.start_s}, {s.end_s}]")
        if abs((s.end_s - s.start_s) - cost.latency_s) > duration_tol(cost.latency_s, s.start_s, s.end_s):
            v.append(f"op {op.name!r} lasts {s.end_s - s.start_s} s on {s.device!r}, "
                     f"cost table says {cost.latency_s} s")
    ok = {n: s for n, s in slots.items() if n in problem.op_by_name and s.device in mem_of}

    # Dependencies, with a transfer whenever producer and consumer memories differ.
    by_tensor_dst = defaultdict(list)
    for tr in schedule.transfers:
        by_tensor_dst[(tr.tensor, tr.dst_memory)].append(tr)
    for op in problem.ops:
        c = ok.get(op.name)
        if c is None:
            continue
        for t in dict.fromkeys(op.inputs):
            pn = problem.producer.get(t)
            if pn is None or pn == op.name or pn not in ok:
                continue
            p = ok[pn]
            if _before(c.start_s, p.end_s):
                v.append(f"op {op.name!r} starts at {c.start_s} before producer {pn!r} of "
                         f"{t!r} ends at {p.end_s}")
            mp, mc = mem_of[p.device], mem_of[c.device]
            if mp != mc:
                good = [tr for tr in by_tensor_dst[(t, mc)]
                        if not _before(tr.start_s, p.end_s) and not _before(c.start_s, tr.end_s)]
                if not good:
                    v.append(f"tensor {t!r} needs a transfer {mp!r}->{mc!r} between producer "
                             f"{pn!r} end {p.end_s} and consumer {op.name!r} start {c.start_s}")

    # Device exclusivity.
    per_dev = defaultdict(list)
    for s in ok.values():
        per_dev[s.device].append(s)
    for d in sorted(per_dev):
        for a, b in _overlapping_neighbours(per_dev[d], lambda s: (s.start_s, s.end_s, s.op)):
            v.append(f"ops {a.op!r} and {b.op!r} overlap on device {d!r}")

    # Transfers: a real link, the whole tensor, long enough, one at a time per directed link.
    per_link = defaultdict(list)
    for tr in schedule.transfers:
        tag = f"transfer of {tr.tensor!r} {tr.src_memory!r}->{tr.dst_memory!r}"
        link = problem.links.get((tr.src_memory, tr.dst_memory))
        if tr.tensor not in problem.tensors:
            v.append(f"{tag}: unknown tensor")
            continue
        if link is None:
            v.append(f"{tag}: no such link")
            continue
        if tr.bytes != problem.tensors[tr.tensor].size_bytes:
            v.append(f"{tag}: moves {tr.bytes} bytes, tensor has {problem.tensors[tr.tensor].size_bytes}")
        if tr.start_s < 0:
            v.append(f"{tag}: negative start {tr.start_s}")
        need = link.time_s(tr.bytes)
        if tr.end_s - tr.start_s < need - duration_tol(need, tr.start_s, tr.end_s):
            v.append(f"{tag}: lasts {tr.end_s - tr.start_s} s, link needs {need} s")
        per_link[(tr.src_memory, tr.dst_memory)].append(tr)
    for key in sorted(per_link):
        for a, b in _overlapping_neighbours(per_link[key], lambda t: (t.start_s, t.end_s, t.tensor)):
            v.append(f"transfers of {a.tensor!r} and {b.tensor!r} overlap on link {key[0]!r}->{key[1]!r}")

    # Residency: tensors present where they are read and written, and where transfers touch them.
    res_of = defaultdict(list)
    for r in schedule.residency:
        res_of[(r.tensor, r.memory)].append(r)

    def resident(t: str, m: str, a: float, b: float) -> bool:
        return any(_covers(r, a, b) for r in res_of[(t, m)])

    for op in problem.ops:
        s = ok.get(op.name)
        if s is None:
            continue
        m = mem_of[s.device]
        for t in dict.fromkeys((*op.inputs, *op.outputs)):
            if not resident(t, m, s.start_s, s.end_s):
                v.append(f"tensor {t!r} not resident in {m!r} during op {op.name!r} "
                         f"[{s.start_s}, {s.end_s}]")
    for tr in schedule.transfers:
        for m in (tr.src_memory, tr.dst_memory):
            if not resident(tr.tensor, m, tr.start_s, tr.end_s):
                v.append(f"tensor {tr.tensor!r} not resident in {m!r} during its transfer "
                         f"[{tr.start_s}, {tr.end_s}]")

    v += _data_flow_violations(problem, schedule, ok, res_of)
    v += _bandwidth_violations(problem, schedule, ok)

    # Memories: known, capacity at every instant, addresses in range and disjoint.
    per_mem = defaultdict(list)
    for r in schedule.residency:
        if r.tensor not in problem.tensors or r.memory not in problem.capacity_bytes:
            v.append(f"residency of {r.tensor!r} in {r.memory!r}: unknown tensor or memory")
            continue
        if r.start_s < 0 or _before(r.end_s, r.start_s):
            v.append(f"residency of {r.tensor!r} in {r.memory!r} has bad interval [{r.start_s}, {r.end_s}]")
            continue
        per_mem[r.memory].append(r)
    for m in sorted(per_mem):
        cap = problem.capacity_bytes[m]
        rs = per_mem[m]
        size = {r.tensor: problem.tensors[r.tensor].size_bytes for r in rs}
        events = sorted([(r.start_s, 1, size[r.tensor]) for r in rs if r.end_s > r.start_s]
                        + [(r.end_s, 0, -size[r.tensor]) for r in rs if r.end_s > r.start_s])
        cur = peak = 0
        at = 0.0
        for t, _, n in events:  # ends sort before starts at equal times
            cur += n
            if cur > peak:
                peak, at = cur, t
        if peak > cap:
            v.append(f"memory {m!r} holds {peak} bytes at t={at} s, capacity {cap} bytes")
        placed = sorted((r for r in rs if r.offset_bytes is not None),
                        key=lambda r: (r.start_s, r.end_s, r.tensor))
        for r in placed:
            if r.offset_bytes < 0 or r.offset_bytes + size[r.tensor] > cap:
                v.append(f"tensor {r.tensor!r} at offset {r.offset_bytes} (+{size[r.tensor]} bytes) "
                         f"is outside memory {m!r} of {cap} bytes")
        v += _address_overlaps(m, placed, size)
    return v


def _bandwidth_violations(problem: MappingProblem, schedule: Schedule, ok: dict) -> list[str]:
    """The first instant (and the sum drawn there) at which each memory's bandwidth is exceeded."""
    if not problem.memory_bandwidth:
        return []
    events = defaultdict(list)  # memory -> (time, 0 end / 1 start, rate)
    def draw(rates: dict[str, float], a: float, b: float) -> None:
        if _before(a, b):
            for m, r in rates.items():
                events[m] += [(a, 1, r), (b - _tol(a, b), 0, -r)]  # touching intervals do not overlap
    for s in ok.values():
        if (s.op, s.device) in problem.costs:
            draw(op_rate(problem, s.op, s.device), s.start_s, s.end_s)
    for tr in schedule.transfers:
        if tr.tensor in problem.tensors and (tr.src_memory, tr.dst_memory) in problem.links:
            draw(transfer_rate(problem, tr.bytes, tr.src_memory, tr.dst_memory), tr.start_s, tr.end_s)
    v = []
    for m in sorted(events):
        cap = problem.memory_bandwidth[m]
        cur = 0.0
        for t, _, r in sorted(events[m]):
            cur += r
            if cur > cap * (1 + REL_TOL):
                v.append(f"memory {m!r} bandwidth exceeded at t={t} s: ops and transfers draw {cur:.6g} bytes/s, "
                         f"bandwidth {cap:.6g} bytes/s")
                break
    return v


def _address_overlaps(m: str, placed: list, size: dict[str, int]) -> list[str]:
    """Residencies (sorted by start) that share addresses while both are live. A sweep by start:
    residencies that ended leave a heap; while no overlap is found the live ones are disjoint, so
    the candidates are found by bisection in address order (after the first overlap, every live
    one is compared, as the messages must list all)."""
    v: list[str] = []
    ending: list = []  # heap of (end, index) of live residencies
    live: dict[int, object] = {}  # index -> residency, in sweep order
    spans: list[tuple[int, int, int]] = []  # (lo, hi, index) of live non-empty ones, by address
    for i, r in enumerate(placed):
        while ending and not _before(r.start_s, ending[0][0]):
            _, j = heapq.heappop(ending)
            a = live.pop(j)
            if _before(a.start_s, a.end_s):
                del spans[bisect.bisect_left(spans, (a.offset_bytes, a.offset_bytes + size[a.tensor], j))]
        lo, hi = r.offset_bytes, r.offset_bytes + size[r.tensor]
        if _before(r.start_s, r.end_s):
            if v:
                hits = sorted(j for j, a in live.items() if _before(a.start_s, a.end_s)
                              and lo < a.offset_bytes + size[a.tensor] and a.offset_bytes < hi)
            else:  # spans are disjoint, so sorted by both ends
                k = _first_above(spans, lo)
                hits = []
                while k < len(spans) and spans[k][0] < hi:
                    hits.append(spans[k][2])
                    k += 1
                hits.sort()
            for j in hits:
                a = live[j]
                alo, ahi = a.offset_bytes, a.offset_bytes + size[a.tensor]
                v.append(f"tensors {a.tensor!r} and {r.tensor!r} overlap in {m!r} at addresses "
                         f"[{max(lo, alo)}, {min(hi, ahi)}) during [{r.start_s}, {min(r.end_s, a.end_s)}]")
            bisect.insort(spans, (lo, hi, i))
        live[i] = r
        heapq.heappush(ending, (r.end_s, i))
    return v


def _first_above(spans: list[tuple[int, int, int]], lo: int) -> int:
    """Index of the first span ending after `lo` (spans disjoint and sorted by address)."""
    a, b = 0, len(spans)
    while a < b:
        mid = (a + b) // 2
        if spans[mid][1] <= lo:
            a = mid + 1
        else:
            b = mid
    return a


def _data_flow_violations(problem: MappingProblem, schedule: Schedule, ok: dict, res_of: dict) -> list[str]:
    """Origins of residencies, reads after arrival, pinned weights/state/outputs, resident devices."""
    v: list[str] = []
    mem_of = problem.memory_of
    makespan = schedule.makespan_s
    into = defaultdict(list)
    for tr in schedule.transfers:
        into[(tr.tensor, tr.dst_memory)].append(tr)
    ready: dict[int, float] = {}  # id(residency) -> when its data is there
    starts_at_zero = defaultdict(set)
    for (t, m), rs in sorted(res_of.items()):
        if t not in problem.tensors:
            continue
        p = ok.get(problem.producer.get(t, ""))
        for r in rs:
            origins = []
            if p is not None and mem_of[p.device] == m and not _before(p.start_s, r.start_s) and not _before(r.end_s, p.end_s):
                origins.append(p.end_s)
            for tr in into[(t, m)]:
                if not _before(tr.start_s, r.start_s) and not _before(r.end_s, tr.end_s):
                    origins.append(tr.end_s)
            if not origins and problem.is_initial(t) and not _before(0.0, r.start_s):
                origins.append(0.0)
                starts_at_zero[t].add(m)
            if not origins:
                v.append(f"tensor {t!r} appears in {m!r} at {r.start_s} s from nowhere (no producer, "
                         f"transfer or initial placement)")
                continue
            ready[id(r)] = min(origins)

    def read_ok(t: str, m: str, a: float, b: float) -> bool:
        return any(_covers(r, a, b) and id(r) in ready and not _before(a, ready[id(r)]) for r in res_of[(t, m)])

    for op in problem.ops:
        s = ok.get(op.name)
        if s is None:
            continue
        m = mem_of[s.device]
        for t in dict.fromkeys(op.inputs):
            if problem.producer.get(t) != op.name and res_of[(t, m)] and any(_covers(r, s.start_s, s.end_s) for r in res_of[(t, m)]) \
                    and not read_ok(t, m, s.start_s, s.end_s):
                v.append(f"op {op.name!r} reads {t!r} in {m!r} at {s.start_s} s before it arrives there")
    for tr in schedule.transfers:
        rs = res_of[(tr.tensor, tr.src_memory)]
        if rs and any(_covers(r, tr.start_s, tr.end_s) for r in rs) and not read_ok(tr.tensor, tr.src_memory, tr.start_s, tr.end_s):
            v.append(f"transfer of {tr.tensor!r} {tr.src_memory!r}->{tr.dst_memory!r} at {tr.start_s} s "
                     f"reads it before it arrives in {tr.src_memory!r}")
    for t, mems in sorted(starts_at_zero.items()):
        fixed = problem.home.get(t)
        if len(mems) > 1 or (fixed is not None and mems != {fixed}):
            v.append(f"tensor {t!r} starts in {sorted(mems)} at time 0; it has one home"
                     + (f" ({fixed!r})" if fixed else ""))
    for t in sorted(problem.tensors):
        kind = problem.tensors[t].kind
        if not problem.uses[t]:
            continue
        if kind in ("weight", "state"):
            p = ok.get(problem.producer.get(t, ""))
            homes = sorted(starts_at_zero.get(t, ())) if p is None else [mem_of[p.device]]
            begin = 0.0 if p is None else p.start_s
            if not any(not _before(begin, r.start_s) and not _before(r.end_s, makespan)
                       for h in homes for r in res_of[(t, h)]):
                v.append(f"{kind} {t!r} is not kept in its home {homes} until the end ({makespan} s)")
        if kind == "output" and not any(not _before(r.end_s, makespan) for r in schedule.residency if r.tensor == t):
            v.append(f"output {t!r} is not kept anywhere until the end ({makespan} s)")
    for op in problem.ops:
        s = ok.get(op.name)
        if s is None or s.device not in problem.resident_devices:
            continue
        m = mem_of[s.device]
        for t in dict.fromkeys(op.inputs):
            if problem.tensors[t].kind == "weight" and not any(
                    r.start_s <= 0.0 and not _before(r.end_s, makespan) for r in res_of[(t, m)]):
                v.append(f"weight {t!r} of resident device {s.device!r} is not in {m!r} from 0 to the end")
    return v

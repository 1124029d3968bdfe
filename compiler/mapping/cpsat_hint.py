"""Warm start for CP-SAT: the heuristic's schedule re-timed in the model's integer units.

The heuristic placement (devices and order) is run again by the eviction simulator with the
model's rounded durations and bandwidth demands, so every hinted value (starts, segments,
addresses, transfers) is consistent with the model. The model is built with as many reload
segments as that schedule uses (`reload_counts`), so the hinted values extend to a feasible
solution at the heuristic's objective. Variables the schedule does not fix (positions of absent
segments, interval lengths, auxiliary literals) are left free: hinting them too was tried and
steered the search worse (the traffic bench's cnn-c at M_R lost its optimum).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pimc.errors import ScheduleError
from pimc.mapping.bandwidth import Contention
from pimc.mapping.cpsat_model import BANDWIDTH_UNIT, CpsatModel, Segment
from pimc.mapping.cpsat_time import TimeScale
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import Schedule


def unit_schedule(p: MappingProblem, scale: TimeScale, placement: Sequence[tuple[str, str]],
                  policy: str) -> Schedule | None:
    """The simulator's schedule of `placement` with the model's rounded durations (times in units)."""
    try:
        return sequence_schedule(
            p, placement, policy, op_time=lambda o, d: scale.units(p.costs[(o, d)].latency_s),
            link_time=lambda t, a, b: scale.units(p.links[(a, b)].time_s(p.tensors[t].size_bytes)),
            contention=Contention.of(p, BANDWIDTH_UNIT))
    except ScheduleError:
        return None


def reload_counts(p: MappingProblem, hint: Schedule) -> dict[tuple[str, str], int]:
    """(tensor, scratchpad) -> how often `hint` brings the tensor back after its first stay there."""
    stays = defaultdict(int)
    for r in hint.residency:
        if r.memory in p.spill_to:
            stays[(r.tensor, r.memory)] += 1
    return {k: n - 1 for k, n in sorted(stays.items()) if n > 1}


def add_hint(model: CpsatModel, hint: Schedule) -> None:
    """Hint every decision the unit-timed schedule `hint` fixes."""
    p, m = model.p, model.m
    values: dict[int, tuple] = {}  # variable index -> (variable, value); first value wins

    def put(var, value) -> None:
        if isinstance(var, int) or var is model._true or var is model._false:
            return
        index = getattr(var, "index", -1)
        if index >= 0 and index not in values:
            values[index] = (var, int(value))

    for (op, d), x in model.x.items():
        put(x, hint.slots[op].device == d)
    for (op, mem), lit in model.inmem.items():
        put(lit, p.memory_of[hint.slots[op].device] == mem)
    for op, s in model.start.items():
        put(s, round(hint.slots[op].start_s))
        put(model.end[op], round(hint.slots[op].end_s))
    put(model.makespan, round(hint.makespan_s))
    res = defaultdict(list)
    for r in hint.residency:
        res[(r.tensor, r.memory)].append(r)
    into = defaultdict(list)
    for tr in hint.transfers:
        into[(tr.tensor, tr.dst_memory)].append(tr)
    chosen: dict[int, object] = {}  # id(segment) -> residency
    for (t, mem), segs in model.segments.items():
        by_role = {role: [s for s in segs if s.role == role] for role in ("home", "copy", "wb")}
        used = defaultdict(int)
        for r in sorted(res.get((t, mem), []), key=lambda r: r.start_s):
            fill = next((tr for tr in into[(t, mem)] if round(tr.start_s) == round(r.start_s)), None)
            prod = hint.slots.get(p.producer.get(t, ""))
            born_here = (fill is None and ((prod is not None and p.memory_of[prod.device] == mem)
                                           or (p.is_initial(t) and r.start_s == 0)))
            if born_here:
                role = "home"
            elif fill is not None and p.spill_to.get(fill.src_memory) == mem and not p.is_initial(t) \
                    and prod is not None and p.memory_of[prod.device] == fill.src_memory:
                role = "wb"
            elif prod is not None and p.memory_of[prod.device] == mem or (t in p.home and p.home[t] == mem):
                role = "home"
            else:
                role = "copy"
            k = used[role]
            used[role] += 1
            if k >= len(by_role[role]):
                continue
            seg = by_role[role][k]
            chosen[id(seg)] = r
            _hint_segment(seg, r, fill, put)
        for seg in segs:
            if id(seg) not in chosen:
                put(seg.present, 0)
    for tr in model.transfers:
        put(tr.present, 0)  # (no effect on those hinted present above)
    for (c, t, mem), (segs, cov) in model.cover.items():
        slot = hint.slots[c]
        if p.memory_of[slot.device] != mem:
            for v in cov:
                put(v, 0)
            continue
        hit = next((k for k, seg in enumerate(segs) if id(seg) in chosen
                    and chosen[id(seg)].start_s <= slot.start_s and chosen[id(seg)].end_s >= slot.end_s), None)
        for k, v in enumerate(cov):
            put(v, k == hit)
    for var, value in values.values():
        m.add_hint(var, value)


def _hint_segment(seg: Segment, r, fill, put) -> None:
    put(seg.present, 1)
    put(seg.start, round(r.start_s))
    put(seg.end, round(r.end_s))
    if seg.offset is not None and r.offset_bytes is not None:
        put(seg.offset, r.offset_bytes)
    if fill is not None:
        put(seg.ready, round(fill.end_s))
        for tr in seg.transfers:
            if tr.src == fill.src_memory:
                put(tr.present, 1)
                put(tr.start, round(fill.start_s))
                put(tr.end, round(fill.end_s))
            else:
                put(tr.present, 0)

"""Warm start for CP-SAT: the heuristic's schedule re-timed in the model's integer units.

The heuristic placement (devices and order) is run again by the eviction simulator with the
model's rounded durations and bandwidth demands, so every hinted value (starts, segments,
addresses, transfers) is consistent with the model; CP-SAT then starts from a complete feasible
solution whenever the simulator's choices fit the model (e.g. no more reloads than it allows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pimc.errors import ScheduleError
from pimc.mapping.cpsat_model import CpsatModel, Segment
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.schedule import Schedule


def unit_schedule(model: CpsatModel, placement: Sequence[tuple[str, str]], policy: str) -> Schedule | None:
    """The simulator's schedule of `placement` with the model's durations (times in units)."""
    p = model.p
    try:
        return sequence_schedule(
            p, placement, policy, op_time=lambda o, d: model.dur[(o, d)],
            link_time=lambda t, a, b: model.scale.units(p.links[(a, b)].time_s(p.tensors[t].size_bytes)),
            contention=model.contention)
    except ScheduleError:
        return None


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

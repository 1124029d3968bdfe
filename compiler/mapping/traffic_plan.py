"""A schedule that attains the byte-level traffic bound, when its tensors can be given addresses.

traffic_bound's least-bytes plan (evictions and ops in order) is played out one step at a time
(each transfer and op after the previous one), and the scratchpad's residencies then get addresses
offline, each at the lowest address free during its whole lifetime (largest, earliest or
longest-lived first: the first order that fits), or, when no such order fits, by a small CP-SAT
packing (the lifetimes are fixed, only the offsets are free: NoOverlap2D). If they fit,
the schedule moves exactly the bound's bytes, so it is optimal for off-chip traffic; if not
(fragmentation), there is no schedule here and the other heuristics and CP-SAT carry on.
"""

from __future__ import annotations

from ortools.sat.python import cp_model

from pimc.mapping.cpsat_solve import WALL_SAFETY_EXTRA_S, WALL_SAFETY_FACTOR
from pimc.mapping.list_scheduler import _assign_offsets, lowest_gap
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.mapping.traffic_bound import MAX_STATES, scratchpad_actions


def plan_schedule(problem: MappingProblem, max_states: int = MAX_STATES) -> Schedule | None:
    p = problem
    found = scratchpad_actions(p, max_states)
    if found is None:
        return None
    device = p.devices[0]
    spm = p.memory_of[device]
    dram = p.spill_to[spm]
    size = {t: v.size_bytes for t, v in p.tensors.items()}
    clock = 0.0
    slots, transfers, closed = {}, [], []
    here: dict[str, float] = {}  # tensor -> since when it is in the scratchpad
    backed: dict[str, float] = {}  # produced tensor -> since when it has a copy in DRAM
    done: set[str] = set()

    def move(t: str, src: str, dst: str) -> float:
        nonlocal clock
        start = clock
        clock += p.links[(src, dst)].time_s(size[t])
        transfers.append(Transfer(t, src, dst, start, clock, size[t]))
        return start

    def needed(t: str) -> bool:
        return any(c not in done for c in p.consumers[t])

    for kind, name in found[1]:
        if kind == "evict":
            if not p.is_initial(name) and name not in backed:
                backed[name] = move(name, spm, dram)
            closed.append((name, spm, here.pop(name), clock))
            continue
        op = p.op_by_name[name]
        for t in dict.fromkeys(op.inputs):
            if t not in here:
                here[t] = move(t, dram, spm)
        start = clock
        clock += p.costs[(name, device)].latency_s
        slots[name] = OpSlot(name, device, start, clock)
        done.add(name)
        for t in op.outputs:
            here[t] = start
            if p.tensors[t].kind == "output":
                backed[t] = move(t, spm, dram)
        for t in sorted({*op.inputs, *op.outputs}):
            if t in here and not needed(t):
                closed.append((t, spm, here.pop(t), clock))
    for t in sorted(here):
        closed.append((t, spm, here.pop(t), clock))
    placed = _offline_offsets(closed, size, p.capacity_bytes[spm])
    if placed is None:
        return None
    residency = [Residency(t, spm, a, b, off, size[t]) for (t, _, a, b), off in placed]
    for t in sorted(p.tensors):
        if p.uses[t] and p.is_initial(t):
            residency.append(Residency(t, dram, 0.0, clock, -1, size[t]))
        elif t in backed:
            residency.append(Residency(t, dram, backed[t], clock, -1, size[t]))
    residency = _assign_offsets(p, residency)
    return Schedule(slots=slots, residency=tuple(residency), transfers=tuple(transfers), solver="bytes-plan",
                    status="heuristic", objective=clock, bound=None, gap=None)


ORDERS = (
    lambda life, n: (-n, life[2], life[0]),  # largest first
    lambda life, n: (life[2], -n, life[0]),  # earliest first
    lambda life, n: (-(life[3] - life[2]), -n, life[0]),  # longest-lived first
)


def _offline_offsets(lives: list[tuple], size: dict[str, int], capacity: int):
    """The first of ORDERS in which every residency, at the lowest address free over its lifetime,
    fits; else an exact packing (_packed_offsets); None if neither finds one."""
    for key in ORDERS:
        order = sorted(range(len(lives)), key=lambda i: key(lives[i], size[lives[i][0]]))
        placed = _first_fit(lives, order, size, capacity)
        if placed is not None:
            return placed
    return _packed_offsets(lives, size, capacity)


PACKING_TIME_S = 2.0
"""CP-SAT's deterministic time for the offline packing (one worker, a fixed seed: reproducible)."""


def _packed_offsets(lives: list[tuple], size: dict[str, int], capacity: int):
    """Offsets for residencies with fixed lifetimes by CP-SAT (NoOverlap2D over time rank x
    address; residencies that only touch in time may share addresses); None if it proves none
    exists or finds none in PACKING_TIME_S."""
    rank = {t: i for i, t in enumerate(sorted({x for life in lives for x in life[2:]}))}
    if any(size[life[0]] > capacity for life in lives):
        return None
    m = cp_model.CpModel()
    offsets, times, spans = [], [], []
    for i, (t, _, a, b) in enumerate(lives):
        if rank[b] <= rank[a]:
            offsets.append(0)  # an empty lifetime overlaps nothing
            continue
        off = m.new_int_var(0, capacity - size[t], f"offset{i}")
        offsets.append(off)
        times.append(m.new_fixed_size_interval_var(rank[a], rank[b] - rank[a], f"time{i}"))
        spans.append(m.new_fixed_size_interval_var(off, size[t], f"bytes{i}"))
    m.add_no_overlap_2d(times, spans)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = PACKING_TIME_S
    # the deterministic clock can undercount CPU time many-fold (see cpsat_solve): a wall-clock net
    solver.parameters.max_time_in_seconds = WALL_SAFETY_FACTOR * PACKING_TIME_S + WALL_SAFETY_EXTRA_S
    if solver.solve(m) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [(life, off if isinstance(off, int) else solver.value(off)) for life, off in zip(lives, offsets)]


def _first_fit(lives: list[tuple], order: list[int], size: dict[str, int], capacity: int):
    offsets: dict[int, int] = {}
    for i in order:
        t, _, a, b = lives[i]
        busy = sorted((offsets[j], offsets[j] + size[lives[j][0]]) for j in offsets
                      if lives[j][2] < b and a < lives[j][3] and a < b and lives[j][2] < lives[j][3])
        off = lowest_gap(busy, size[t])
        if off + size[t] > capacity:
            return None
        offsets[i] = off
    return [(lives[i], offsets[i]) for i in range(len(lives))]

"""Run a fixed (op, device) sequence with scratchpad eviction: the heuristic baselines.

Ops run in the given order, each as early as its device, its inputs and free memory allow. A tensor
is copied from its home to the memory of a device that reads it; in a scratchpad (`spill_to`) it is
placed first-fit and, when the space is short, a victim is evicted: Belady (furthest next use in
that memory; optimal for equal sizes) or LRU. A victim still needed and not yet in the backing
memory is written back first (a spill); later reads reload it. Outputs born in a scratchpad are
written back at once (compulsory). Memories without a backing never evict: they must fit.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pimc.errors import ScheduleError
from pimc.mapping.list_scheduler import _assign_offsets
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer

POLICIES = ("belady", "lru")
_NEVER = float("inf")


@dataclass
class _Block:
    tensor: str
    offset: int
    size: int
    start: float
    ready: float
    last: float  # end of the latest read, write or transfer touching this copy
    stamp: int  # position of the latest op that used it (LRU)


class _Memory:
    """Live blocks of one memory, first-fit, and when each freed byte range became free."""

    def __init__(self, name: str, capacity: int):
        self.name, self.capacity = name, capacity
        self.live: dict[str, _Block] = {}
        self.freed: list[tuple[int, int, float]] = []  # offset, size, free from

    def hole(self, size: int, when: float) -> int | None:
        """First address with `size` bytes not live, free by `when` if possible (else the one
        free soonest); None if no gap is large enough."""
        live = sorted((b.offset, b.offset + b.size) for b in self.live.values())
        cands = sorted({0, *(hi for _, hi in live), *(o + n for o, n, _ in self.freed)})
        best = None
        for off in cands:
            if off + size > self.capacity or any(lo < off + size and off < hi for lo, hi in live):
                continue
            free = self.free_from(off, size)
            if free <= when:
                return off
            if best is None or free < best[0]:
                best = (free, off)
        return None if best is None else best[1]

    def free_from(self, off: int, size: int) -> float:
        return max((t for o, n, t in self.freed if o < off + size and off < o + n), default=0.0)


def sequence_schedule(problem: MappingProblem, placement: Sequence[tuple[str, str]],
                      policy: str = "belady", solver: str = "sequence",
                      op_time: Callable[[str, str], float] | None = None,
                      link_time: Callable[[str, str, str], float] | None = None) -> Schedule:
    """The schedule of `placement` (a topological order of (op, device)) under `policy`.
    op_time(op, device) / link_time(tensor, src, dst) replace the exact durations (the CP-SAT
    warm start runs this in integer time units)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown eviction policy {policy!r}")
    return _Run(problem, list(placement), policy, op_time, link_time).schedule(solver)


class _Run:
    def __init__(self, problem: MappingProblem, placement: list[tuple[str, str]], policy: str,
                 op_time=None, link_time=None):
        p = self.p = problem
        self.op_time = op_time or (lambda o, d: p.costs[(o, d)].latency_s)
        self.link_time = link_time or (lambda t, a, b: p.links[(a, b)].time_s(p.tensors[t].size_bytes))
        self.placement, self.policy = placement, policy
        self.device = dict(placement)
        if sorted(self.device) != sorted(o.name for o in p.ops):
            raise ScheduleError("placement must list every op exactly once")
        self.pos = {op: i for i, (op, _) in enumerate(placement)}
        for op, _ in placement:
            for u in p.graph.predecessors(op):
                if self.pos[u] > self.pos[op]:
                    raise ScheduleError(f"placement runs {op!r} before its producer {u!r}")
        self.mem = {m: _Memory(m, c) for m, c in p.capacity_bytes.items()}
        # reads[t][m] = sorted positions of the ops in memory m that read t
        self.reads: dict[str, dict[str, list[int]]] = {t: {} for t in p.tensors}
        for op, d in placement:
            for t in dict.fromkeys(p.op_by_name[op].inputs):
                if p.producer.get(t) != op:
                    self.reads[t].setdefault(p.memory_of[d], []).append(self.pos[op])
        self.home = self._homes()
        self.in_backing: set[str] = set()  # tensors with a valid copy in their scratchpad's backing
        self.dev_free = {d: 0.0 for d in p.devices}
        self.link_free: dict[tuple[str, str], float] = {}
        self.slots: dict[str, OpSlot] = {}
        self.transfers: list[Transfer] = []
        self.residency: list[Residency] = []

    # -- bookkeeping -----------------------------------------------------------------------------
    def _homes(self) -> dict[str, str]:
        p, home = self.p, {}
        for t in p.tensors:
            readers = [(self.pos[o], self.device[o]) for o in p.uses[t]]
            if not readers:
                continue
            resident = {p.memory_of[d] for _, d in readers if d in p.resident_devices} if p.tensors[t].kind == "weight" else set()
            if t in p.producer:
                home[t] = p.memory_of[self.device[p.producer[t]]]
            elif t in p.home:
                home[t] = p.home[t]
            elif resident:
                home[t] = min(resident)
            else:
                home[t] = p.memory_of[min(readers)[1]]
            if resident and resident != {home[t]}:
                raise ScheduleError(f"weight {t!r} must stay in {sorted(resident)} for resident devices "
                                    f"but its home is {home[t]!r}")
        return home

    def _next_read(self, t: str, m: str, after: int) -> float:
        rs = self.reads[t].get(m, [])
        i = bisect.bisect_right(rs, after)
        return rs[i] if i < len(rs) else _NEVER

    def _needed_later(self, t: str, after: int) -> bool:
        return any(self._next_read(t, m, after) < _NEVER for m in self.reads[t])

    def _pinned(self, t: str, m: str) -> bool:
        """Stays in m to the end: weights and state at home, outputs at a home without backing."""
        if self.home.get(t) != m:
            return False
        return self.p.pinned(t) or (self.p.tensors[t].kind == "output" and m not in self.p.spill_to)

    def _close(self, m: str, t: str) -> None:
        b = self.mem[m].live.pop(t)
        self.residency.append(Residency(t, m, b.start, b.last, b.offset, b.size))
        if b.offset >= 0:
            self.mem[m].freed.append((b.offset, b.size, b.last))

    def _move(self, t: str, src: str, dst: str, not_before: float) -> tuple[float, float]:
        link = self.p.links.get((src, dst))
        if link is None:
            raise ScheduleError(f"tensor {t!r} must move {src!r}->{dst!r} but there is no such link")
        size = self.p.tensors[t].size_bytes
        sb = self.mem[src].live[t]
        start = max(not_before, sb.ready, self.link_free.get((src, dst), 0.0))
        end = start + self.link_time(t, src, dst)
        self.link_free[(src, dst)] = end
        sb.last = max(sb.last, end)
        self.transfers.append(Transfer(t, src, dst, start, end, size))
        return start, end

    # -- memory ----------------------------------------------------------------------------------
    def _place(self, m: str, t: str, keep: set[str], now: int, when: float = 0.0) -> tuple[int, float]:
        """An address for t in m and when that space is free. Scratchpads place online and evict;
        other memories never evict, so their addresses are assigned after the run (offset -1)."""
        mem, size = self.mem[m], self.p.tensors[t].size_bytes
        if size > mem.capacity:
            raise ScheduleError(f"memory {m!r} overflows: tensor {t!r} ({size} bytes) is larger than its "
                                f"capacity {mem.capacity} bytes")
        if m not in self.p.spill_to:
            return -1, 0.0
        while (off := mem.hole(size, when)) is None:
            victim = self._victim(m, keep, now)
            if victim is None:
                live = sum(b.size for b in mem.live.values())
                raise ScheduleError(f"memory {m!r} overflows: {live} bytes live + {size} for {t!r} > "
                                    f"capacity {mem.capacity} bytes and nothing can be evicted")
            self._evict(m, victim, now)
        return off, mem.free_from(off, size)

    def _victim(self, m: str, keep: set[str], now: int) -> str | None:
        backing = self.p.spill_to.get(m)
        cands = []
        for t, b in self.mem[m].live.items():
            if t in keep or self._pinned(t, m):
                continue
            later = self._needed_later(t, now)
            safe = (not later or t in self.in_backing or (self.home[t] != m and t in self.mem[self.home[t]].live)
                    or backing is not None)
            if not safe:
                continue
            nxt = self._next_read(t, m, now)
            key = (-nxt, -b.size, t) if self.policy == "belady" else (b.stamp, -b.size, t)
            cands.append((key, t))
        return min(cands)[1] if cands else None

    def _evict(self, m: str, t: str, now: int) -> None:
        backing = self.p.spill_to.get(m)
        if (self._needed_later(t, now) and t not in self.in_backing and self.home[t] == m
                and backing is not None):
            self._writeback(t, m, backing)
        self._close(m, t)

    def _writeback(self, t: str, m: str, backing: str) -> None:
        off, free = self._place(backing, t, set(), len(self.placement))
        start, end = self._move(t, m, backing, free)
        self.mem[backing].live[t] = _Block(t, off, self.p.tensors[t].size_bytes, start, end, end, 0)
        self.in_backing.add(t)

    # -- the run ---------------------------------------------------------------------------------
    def schedule(self, solver: str) -> Schedule:
        p = self.p
        for t, h in sorted(self.home.items()):
            if p.is_initial(t):
                off, _ = self._place(h, t, set(), -1)
                self.mem[h].live[t] = _Block(t, off, p.tensors[t].size_bytes, 0.0, 0.0, 0.0, -1)
                if h in p.spill_to.values():
                    self.in_backing.add(t)
        for i, (op, d) in enumerate(self.placement):
            self._run(i, p.op_by_name[op], d)
        end = max([s.end_s for s in self.slots.values()] + [t.end_s for t in self.transfers], default=0.0)
        for m in sorted(self.mem):
            for t in sorted(self.mem[m].live):
                b = self.mem[m].live[t]
                if self._pinned(t, m) or (p.tensors[t].kind == "output"):
                    b.last = end
                self._close(m, t)
        self.residency = _assign_offsets(p, self.residency)
        self.transfers.sort(key=lambda t: (t.start_s, t.src_memory, t.dst_memory, t.tensor))
        return Schedule(slots=self.slots, residency=tuple(self.residency), transfers=tuple(self.transfers),
                        solver=solver, status="heuristic", objective=end, bound=None, gap=None)

    def _run(self, i: int, op, d: str) -> None:
        p = self.p
        m = p.memory_of[d]
        mem = self.mem[m]
        keep = set(op.inputs) | set(op.outputs)
        ready = self.dev_free[d]
        for t in dict.fromkeys(op.inputs):
            if p.producer.get(t) == op.name:
                continue  # state updated in place: placed below as an output
            if t in mem.live:
                ready = max(ready, mem.live[t].ready)
                continue
            backing = p.spill_to.get(m)
            if backing is not None and t in self.in_backing and t in self.mem[backing].live:
                src = backing
            elif t in self.mem[self.home[t]].live:
                src = self.home[t]
            else:
                raise ScheduleError(f"op {op.name!r}: tensor {t!r} is nowhere to be read")
            off, free = self._place(m, t, keep, i, self.dev_free[d])
            start, end = self._move(t, src, m, free)
            mem.live[t] = _Block(t, off, p.tensors[t].size_bytes, start, end, end, i)
            ready = max(ready, end)
        new = [t for t in dict.fromkeys(op.outputs) if t not in mem.live]
        for t in new:
            off, free = self._place(m, t, keep, i, ready)
            mem.live[t] = _Block(t, off, p.tensors[t].size_bytes, _NEVER, _NEVER, 0.0, i)
            ready = max(ready, free)
        start = ready
        finish = start + self.op_time(op.name, d)
        self.slots[op.name] = OpSlot(op.name, d, start, finish)
        self.dev_free[d] = finish
        for t in new:
            b = mem.live[t]
            b.start, b.ready = start, finish
        for t in keep:
            b = mem.live[t]
            b.last, b.stamp = max(b.last, finish), i
        backing = p.spill_to.get(m)
        for t in new:
            if p.tensors[t].kind == "output" and backing is not None:
                self._writeback(t, m, backing)
        for t in sorted(keep):  # free what this memory no longer needs
            if t in mem.live and not self._pinned(t, m) and self._next_read(t, m, i) == _NEVER:
                if self.home[t] == m and self._needed_later(t, i) and t not in self.in_backing:
                    continue  # still the source of a later copy
                self._close(m, t)

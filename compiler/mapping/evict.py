"""Run a fixed (op, device) sequence with scratchpad eviction: the heuristic baselines.

Ops run in the given order, each as early as its device, its inputs and free memory allow. A tensor
is copied from its home to the memory of a device that reads it; in a scratchpad (`spill_to`) it is
placed first-fit and, when the space is short, a victim is evicted: Belady (furthest next use in
that memory; optimal for equal sizes) or LRU. A victim still needed and not yet in the backing
memory is written back first (a spill); later reads reload it. Outputs born in a scratchpad are
written back at once (compulsory). Memories without a backing never evict: they must fit.

Tight scratchpads: when an op's operands find no contiguous range even with every other tensor
gone (fragmentation), victims are evicted by the same policy until a lowest-address packing of the
operands fits, and if the op's own resident inputs are what fragments the space, they are spilled
too and reloaded packed. So whenever the op's inputs + outputs fit the scratchpad (beside pinned
tensors), the run finds a schedule.

Shared memory bandwidth (bandwidth.py): each op and transfer starts at the earliest time its
draws fit beside those already placed (delayed, never slowed: conservative).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pimc.errors import ScheduleError
from pimc.mapping.bandwidth import Contention, Profile
from pimc.mapping.free_ranges import FreedRanges, free_gaps
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
    """Live blocks of one memory, and since when each byte range has been free (free_ranges.py)."""

    def __init__(self, name: str, capacity: int):
        self.name, self.capacity = name, capacity
        self.live: dict[str, _Block] = {}
        self.freed = FreedRanges()

    def hole(self, size: int, lowest: bool = False) -> int | None:
        """An address with `size` bytes not live: the one whose range was freed soonest (ties: the
        lowest; with `lowest`, simply the lowest address); None if no gap is large enough. The
        addresses tried are the starts of the free gaps and the ends of freed ranges."""
        gaps = free_gaps(sorted((b.offset, b.offset + b.size) for b in self.live.values()), size, self.capacity)
        if lowest:
            return next(gaps, (None,))[0]
        return self.freed.soonest(gaps, size)

    def free(self, offset: int, size: int, at: float) -> None:
        self.freed.free(offset, size, at)

    def free_from(self, off: int, size: int) -> float:
        return self.freed.free_from(off, size)

    def packs(self, sizes: list[int], blocks: list[_Block] | None = None) -> bool:
        """Whether `sizes`, placed in turn at the lowest free address beside `blocks` (default:
        the live ones), all fit; `hole(..., lowest=True)` places them exactly so."""
        taken = sorted((b.offset, b.offset + b.size) for b in (self.live.values() if blocks is None else blocks))
        for size in sizes:
            gap = next(free_gaps(taken, size, self.capacity), None)
            if gap is None:
                return False
            bisect.insort(taken, (gap[0], gap[0] + size))
        return True


class _NoRoom(ScheduleError):
    """A scratchpad has no contiguous range for a tensor and no victim left to evict."""


def sequence_schedule(problem: MappingProblem, placement: Sequence[tuple[str, str]],
                      policy: str = "belady", solver: str = "sequence",
                      op_time: Callable[[str, str], float] | None = None,
                      link_time: Callable[[str, str, str], float] | None = None,
                      stats: dict[str, int] | None = None, contention: Contention | None = None) -> Schedule:
    """The schedule of `placement` (a topological order of (op, device)) under `policy`.
    op_time(op, device) / link_time(tensor, src, dst) replace the exact durations (the CP-SAT
    warm start runs this in integer time units). `stats`, if given, receives why it evicted:
    evictions_capacity / evictions_fragmentation (the live bytes did / did not leave room for the
    tensor being placed; fragmentation = room but no contiguous range) and bytes_capacity /
    bytes_fragmentation (the spills and reloads those evictions caused); repacks: ops whose own
    resident inputs were spilled so that their operands could be packed. `contention` (default: the
    problem's, in bytes/s) gives the integer bandwidth draws, in the units of op_time/link_time's
    caller (the warm start passes CP-SAT's)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown eviction policy {policy!r}")
    run = _Run(problem, list(placement), policy, op_time, link_time,
               contention if contention is not None else Contention.of(problem))
    schedule = run.schedule(solver)
    if stats is not None:
        stats.update(run.stats)
    return schedule


class _Run:
    def __init__(self, problem: MappingProblem, placement: list[tuple[str, str]], policy: str,
                 op_time=None, link_time=None, contention: Contention | None = None):
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
        self.contention = contention
        self.bandwidth = None if contention is None else Profile(contention)
        self.slots: dict[str, OpSlot] = {}
        self.transfers: list[Transfer] = []
        self.residency: list[Residency] = []
        self.stats = dict.fromkeys(("evictions_capacity", "evictions_fragmentation",
                                    "bytes_capacity", "bytes_fragmentation", "repacks"), 0)
        self.evicted: dict[tuple[str, str], str] = {}  # (tensor, memory) -> why it was evicted

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
            self.mem[m].free(b.offset, b.size, b.last)

    def _move(self, t: str, src: str, dst: str, not_before: float) -> tuple[float, float]:
        link = self.p.links.get((src, dst))
        if link is None:
            raise ScheduleError(f"tensor {t!r} must move {src!r}->{dst!r} but there is no such link")
        size = self.p.tensors[t].size_bytes
        sb = self.mem[src].live[t]
        start = max(not_before, sb.ready, self.link_free.get((src, dst), 0.0))
        length = self.link_time(t, src, dst)
        if self.bandwidth is not None:
            draws = self.contention.transfer(t, src, dst)
            start = self.bandwidth.earliest(start, length, draws)
            self.bandwidth.add(start, length, draws)
        end = start + length
        self.link_free[(src, dst)] = end
        sb.last = max(sb.last, end)
        self.transfers.append(Transfer(t, src, dst, start, end, size))
        return start, end

    # -- memory ----------------------------------------------------------------------------------
    def _place(self, m: str, t: str, keep: set[str], now: int, pack: bool = False) -> tuple[int, float]:
        """An address for t in m and when that space is free. Scratchpads place online and evict
        (`pack`: at the lowest free address); other memories never evict, so their addresses are
        assigned after the run (offset -1)."""
        mem, size = self.mem[m], self.p.tensors[t].size_bytes
        if size > mem.capacity:
            raise ScheduleError(f"memory {m!r} overflows: tensor {t!r} ({size} bytes) is larger than its "
                                f"capacity {mem.capacity} bytes")
        if m not in self.p.spill_to:
            return -1, 0.0
        while (off := mem.hole(size, lowest=pack)) is None:
            victim = self._victim(m, keep, now)
            if victim is None:
                live = sum(b.size for b in mem.live.values())
                raise _NoRoom(f"memory {m!r} overflows: {live} bytes live + {size} for {t!r} > "
                                    f"capacity {mem.capacity} bytes and nothing can be evicted")
            self._evict(m, victim, now, size)
        return off, mem.free_from(off, size)

    def _evictable(self, m: str, t: str, now: int) -> bool:
        if self._pinned(t, m):
            return False
        return (not self._needed_later(t, now) or t in self.in_backing or m in self.p.spill_to
                or (self.home[t] != m and t in self.mem[self.home[t]].live))

    def _victim(self, m: str, keep: set[str], now: int) -> str | None:
        cands = []
        for t, b in self.mem[m].live.items():
            if t in keep or not self._evictable(m, t, now):
                continue
            nxt = self._next_read(t, m, now)
            key = (-nxt, -b.size, t) if self.policy == "belady" else (b.stamp, -b.size, t)
            cands.append((key, t))
        return min(cands)[1] if cands else None

    def _evict(self, m: str, t: str, now: int, need: int) -> None:
        """Evict t from m to make room for `need` bytes (spilling it first if it is still needed)."""
        mem = self.mem[m]
        why = "fragmentation" if sum(b.size for b in mem.live.values()) + need <= mem.capacity else "capacity"
        self.stats[f"evictions_{why}"] += 1
        backing = self.p.spill_to.get(m)
        if (self._needed_later(t, now) and t not in self.in_backing and self.home[t] == m
                and backing is not None):
            self._writeback(t, m, backing)
            self.stats[f"bytes_{why}"] += self.p.tensors[t].size_bytes
        if self._needed_later(t, now):
            self.evicted[(t, m)] = why
        self._close(m, t)

    def _make_room(self, op: str, m: str, keep: set[str], now: int, missing) -> None:
        """Evict by policy until `missing()` (the sizes of the op's operands still to place) packs
        at the lowest addresses; if the op's own resident inputs fragment the space, spill them
        too (reloaded packed). Raises only when the operands cannot fit beside pinned tensors."""
        mem = self.mem[m]

        def evict_until_packed() -> bool:
            while not mem.packs(missing()):
                victim = self._victim(m, keep, now)
                if victim is None:
                    return False
                self._evict(m, victim, now, sum(missing()))
            return True

        if evict_until_packed():
            return
        self.stats["repacks"] += 1
        for t in sorted(t for t in keep if t in mem.live and mem.live[t].start != _NEVER and not self._pinned(t, m)):
            self._evict(m, t, now - 1, sum(missing()))  # now - 1: this op's own read is a later use
        if not evict_until_packed():
            pinned = sum(b.size for b in mem.live.values())
            raise ScheduleError(f"memory {m!r} overflows: op {op!r} needs {sum(missing())} bytes of operands "
                                f"beside {pinned} bytes that cannot be evicted; capacity {mem.capacity} bytes")

    def _operands(self, i: int, op, d: str, ins: list[str], new: list[str], keep: set[str], pack: bool) -> float:
        """Load the op's missing inputs and place its new outputs in its memory; when it can start."""
        p = self.p
        m = p.memory_of[d]
        mem = self.mem[m]
        ready = self.dev_free[d]
        for t in ins:
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
            off, free = self._place(m, t, keep, i, pack)
            start, end = self._move(t, src, m, free)
            why = self.evicted.pop((t, m), None)
            if why is not None:  # a reload caused by an eviction
                self.stats[f"bytes_{why}"] += p.tensors[t].size_bytes
            mem.live[t] = _Block(t, off, p.tensors[t].size_bytes, start, end, end, i)
            if p.spill_to.get(self.home[t]) == m:
                self.in_backing.add(t)  # a copy in its scratchpad's backing serves as the spilled copy
            ready = max(ready, end)
        for t in new:
            off, free = self._place(m, t, keep, i, pack)
            mem.live[t] = _Block(t, off, p.tensors[t].size_bytes, _NEVER, _NEVER, 0.0, i)
            ready = max(ready, free)
        return ready

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
        ins = [t for t in dict.fromkeys(op.inputs) if p.producer.get(t) != op.name]  # in-place state: an output
        new = [t for t in dict.fromkeys(op.outputs) if t not in mem.live]
        size = p.tensors

        def missing() -> list[int]:
            return [size[t].size_bytes for t in ins if t not in mem.live] + \
                   [size[t].size_bytes for t in new if t not in mem.live]

        pack = False
        if m in p.spill_to:
            stays = [b for t, b in mem.live.items() if t in keep or not self._evictable(m, t, i)]
            if not mem.packs(missing(), stays):  # fragmented even with every victim gone
                self._make_room(op.name, m, keep, i, missing)
                pack = True
        while True:
            try:
                ready = self._operands(i, op, d, ins, new, keep, pack)
                break
            except _NoRoom:
                if pack:
                    raise
                for t in new:  # drop output placeholders, keep the loaded inputs, and pack the rest
                    if t in mem.live:
                        del mem.live[t]
                self._make_room(op.name, m, keep, i, missing)
                pack = True
        start = ready
        length = self.op_time(op.name, d)
        if self.bandwidth is not None:
            draws = self.contention.op(op.name, d)
            start = self.bandwidth.earliest(start, length, draws)
            self.bandwidth.add(start, length, draws)
        finish = start + length
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
                if self._needed_later(t, i) and self._source(t, m):
                    continue  # still the source of a later copy
                self._close(m, t)

    def _source(self, t: str, m: str) -> bool:
        """Whether m's copy of t is where later copies come from: its home (unless that is a
        scratchpad already spilled to its backing) or the backing copy of a spilled tensor."""
        home = self.home[t]
        if home == m:
            return t not in self.in_backing or m not in self.p.spill_to
        return t in self.in_backing and self.p.spill_to.get(home) == m

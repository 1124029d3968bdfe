"""Stitch solved pieces of a function (ops before the blocks, each identical block, ops after)
into one schedule, each piece shifted as early as its inputs and the machine allow.

A piece is a schedule of a sub-problem (mapper.block_problem). Replica k of a block is block 0's
schedule with op and tensor names mapped position by position. Each piece keeps its own timing,
devices, transfers and scratchpad addresses, and is placed at the smallest offset where

- every tensor it takes from an earlier piece is ready in the memory the piece reads it from
  (its producer ended there, or a transfer, e.g. the write-back of a scratchpad output, arrived), and
- every device, directed link and scratchpad address range it uses is free: its intervals do not
  overlap the intervals already placed on the same resource, and
- the draws of its ops and transfers on shared memory bandwidth (bandwidth.py) fit beside those
  already placed (the piece's own draws summed, as they run together).

So the next block's weight loads run while the current block still computes, as far as links,
memory bandwidth and scratchpad space allow. Memories without a backing (DRAM, device memories) get
addresses after stitching, as in the list replay; a tensor passed between pieces through such a
memory is one residency from its producer to its last reader. A piece that would need a boundary tensor where the
previous piece did not leave it raises ScheduleError (the mapper then keeps another block
candidate that passes the checker, or the heuristic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from pimc.errors import ScheduleError
from pimc.mapping.list_scheduler import _assign_offsets, lowest_gap
from pimc.mapping.overlapped import ItemPlacer, slots_and_transfers
from pimc.mapping.problem import MappingProblem
from pimc.mapping.resources import Resources
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.mapping.tolerance import before


@dataclass(frozen=True)
class Piece:
    """A schedule of `sub` with its op and tensor names mapped to the full problem's."""

    sub: MappingProblem
    schedule: Schedule
    ops: dict[str, str]
    tensors: dict[str, str]


class _Held(NamedTuple):
    """A scratchpad residency of a piece: its index in the piece's schedule, where, when (end inf
    for tensors kept to the end of the function), its size and the address it was solved with."""

    index: int
    memory: str
    start: float
    end: float
    size: int
    solved_offset: int


def replica_names(problem: MappingProblem, block0: list[str], block_k: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Op and tensor renaming from block 0 to block k (ops aligned by position)."""
    ops = dict(zip(block0, block_k))
    tensors: dict[str, str] = {}
    for a, b in ops.items():
        oa, ob = problem.op_by_name[a], problem.op_by_name[b]
        for x, y in zip((*oa.inputs, *oa.outputs), (*ob.inputs, *ob.outputs)):
            if tensors.setdefault(x, y) != y:
                raise ScheduleError(f"stitch: block tensor {x!r} maps to both {tensors[x]!r} and {y!r}")
    return ops, tensors


def _fit(ranges: list[tuple[int, int]], size: int, capacity: int, prefer: int) -> int | None:
    """`prefer` if [prefer, prefer + size) is clear of `ranges`, else the lowest clear offset."""
    if prefer + size <= capacity and not any(lo < prefer + size and prefer < hi for lo, hi in ranges):
        return prefer
    off = lowest_gap(ranges, size)
    return off if off + size <= capacity else None


class Stitcher:
    def __init__(self, problem: MappingProblem):
        self.p = problem
        self.resources = Resources(problem)  # what placed pieces hold (shared with overlapped.py)
        self.ready: dict[tuple[str, str], float] = {}  # (tensor, memory) -> data there from
        self.slots: dict[str, OpSlot] = {}
        self.transfers: list[Transfer] = []
        self.residency: list[Residency | None] = []
        self.open: dict[tuple[str, str], int] = {}  # (tensor, unbacked memory) -> residency index
        self.device: dict[str, str] = {}  # op -> device, of every piece placed or being placed
        self.last: dict[tuple[str, str], int] = {}  # (tensor, memory) -> its latest residency index
        self.initial_mem: dict[str, str] = {}  # tensor present at time 0 -> the memory it starts in

    def add(self, piece: Piece) -> float:
        """Place `piece` at its earliest offset (devices and links exactly; scratchpad residencies
        keep their address when it is free, else take the lowest free one); returns the offset."""
        self.device.update({piece.ops[x.op]: x.device for x in piece.schedule.slots.values()})
        timed = list(self._timed(piece))
        held = self._held(piece)
        drawn = self._drawn(piece)
        bandwidth = self.resources.bandwidth
        segments = [] if bandwidth is None else bandwidth.segments((a, b, d) for a, b, d in drawn)
        delta = self._dependency_offset(piece)
        while True:
            delta = self._bump(timed, delta, segments)
            offsets, later = self._addresses(held, delta)
            if offsets is not None:
                break
            delta = later
        for key, a, b in timed:
            self.resources.hold(key, a + delta, b + delta)
        for a, b, draws in drawn:
            self.resources.draw(a + delta, b - a, draws)
        for h, off in zip(held, offsets):
            self.resources.hold(("memory", h.memory), h.start + delta, h.end + delta, off, off + h.size)
        self._emit_shifted(piece, delta, {h.index: off for h, off in zip(held, offsets)})
        return delta

    def _bump(self, timed, delta: float, segments) -> float:
        """The smallest offset >= delta where no device or link interval overlaps a placed one and
        the piece's bandwidth draws fit: every offset skipped has a conflict."""
        moved = True
        while moved:
            moved = False
            for key, a, b in timed:
                busy = self.resources.get(key)
                end = None if busy is None else busy.conflict_end(a + delta, b + delta)
                if end is not None:
                    delta, moved = max(delta, end - a), True
            if segments:
                later = self.resources.bandwidth.earliest_segments(delta, segments)
                if later > delta:
                    delta, moved = later, True
        return delta

    def _drawn(self, piece: Piece) -> list:
        """(start, end, draws) of the piece's ops and transfers that draw on shared bandwidth."""
        c = self.resources.contention
        if c is None:
            return []
        s = piece.schedule
        out = [(x.start_s, x.end_s, c.op(piece.ops[x.op], x.device)) for x in s.ops_in_order()]
        out += [(t.start_s, t.end_s, c.transfer(piece.tensors[t.tensor], t.src_memory, t.dst_memory)) for t in s.transfers]
        return [(a, b, d) for a, b, d in out if d and b > a]

    def _addresses(self, held: list[_Held], delta: float):
        """Addresses for the piece's scratchpad residencies at `delta` (first the one it was solved
        with, else first fit), or (None, the next offset worth trying)."""
        offsets: list[int] = []
        mine: dict[str, list[tuple[float, float, int, int]]] = {}
        for _, m, a, b, size, solved in held:
            start, end = a + delta, b + delta
            busy = self.resources.get(("memory", m))
            placed = [] if busy is None else busy.ranges(start, end)  # (lo, hi, end)
            ranges = [(lo, hi) for lo, hi, _ in placed]
            ranges += [(lo, hi) for s0, e0, lo, hi in mine.get(m, ()) if s0 < end and start < e0]
            off = _fit(sorted(ranges), size, self.p.capacity_bytes[m], solved)
            if off is None:
                later = min((e - a for _, _, e in placed if e - a > delta), default=None)
                if later is None:
                    raise ScheduleError(f"stitch: scratchpad {m!r} cannot hold the piece's tensors")
                return None, later
            offsets.append(off)
            mine.setdefault(m, []).append((start, end, off, off + size))
        return offsets, delta

    # -- what a piece uses -----------------------------------------------------------------------
    def _timed(self, piece: Piece):
        s = piece.schedule
        for x in s.ops_in_order():
            yield ("device", x.device), x.start_s, x.end_s
        for t in s.transfers:
            yield ("link", t.src_memory, t.dst_memory), t.start_s, t.end_s

    def _held(self, piece: Piece) -> list[_Held]:
        """The piece's scratchpad residencies by start, largest first among equal starts."""
        p, s = self.p, piece.schedule
        out = []
        for i, r in enumerate(s.residency):
            if r.memory not in p.spill_to or r.offset_bytes is None:
                continue
            name = piece.tensors[r.tensor]
            end = math.inf if self.kept(piece, r) else r.end_s
            out.append(_Held(i, r.memory, r.start_s, end, p.tensors[name].size_bytes, r.offset_bytes))
        return sorted(out, key=lambda h: (h.start, -h.size, h.index))

    def kept(self, piece: Piece, r: Residency) -> bool:
        """Whether the piece's residency `r` holds its place to the end of the function: an output,
        a pinned tensor in its home, or a pinned initial tensor where the piece starts it."""
        p, name = self.p, piece.tensors[r.tensor]
        return self._kept_to_end(name, r.memory) or (
            p.pinned(name) and p.is_initial(name) and r.start_s <= 0.0
            and r.memory == piece.sub.home.get(r.tensor, r.memory))

    def _kept_to_end(self, t: str, m: str) -> bool:
        return self.p.tensors[t].kind == "output" or (self.p.pinned(t) and self._home(t) == m)

    def _home(self, t: str) -> str | None:
        p = self.p
        prod = p.producer.get(t)
        if prod is not None:
            return p.memory_of[self.device[prod]] if prod in self.device else None
        return p.home.get(t, self.initial_mem.get(t))

    def _boundary_inputs(self, piece: Piece):
        """(full name, home memory, first local use there) of tensors earlier pieces produce."""
        sub, s = piece.sub, piece.schedule
        for t, tensor in sub.tensors.items():
            name = piece.tensors[t]
            if t in sub.producer or name not in self.p.producer:
                continue
            home = sub.home.get(t)
            uses = [x.start_s for x in s.slots.values() if sub.memory_of[x.device] == home
                    and t in sub.op_by_name[x.op].inputs]
            uses += [tr.start_s for tr in s.transfers if tr.tensor == t and tr.src_memory == home]
            if uses:
                yield name, home, min(uses)

    def _dependency_offset(self, piece: Piece) -> float:
        delta = 0.0
        for name, home, first in self._boundary_inputs(piece):
            if (name, home) not in self.ready:
                self.copy_to(name, home)
            delta = max(delta, self.ready[(name, home)] - first)
        return delta

    def copy_to(self, name: str, dst: str) -> None:
        """Copy a boundary tensor from where an earlier piece left it to where the next piece reads
        it (e.g. a scratchpad output to DRAM), on the first free slot of the link while it is there."""
        p = self.p
        for src in sorted(m for (t, m) in self.ready if t == name):
            link = p.links.get((src, dst))
            i = self.last.get((name, src))
            if link is None or i is None:
                continue
            res = self.residency[i]
            length = link.time_s(p.tensors[name].size_bytes)
            draws = self.resources.transfer_draws(name, src, dst)
            start = self.resources.earliest(("link", src, dst), self.ready[(name, src)], length, draws)
            if before(res.end_s, start + length):  # keep the source copy until the copy is done
                if res.offset_bytes is not None and src in p.spill_to:
                    lo, hi = res.offset_bytes, res.offset_bytes + p.tensors[name].size_bytes
                    held = self.resources.get(("memory", src))
                    if held is not None and held.conflict_end(res.end_s, start + length, lo, hi) is not None:
                        continue
                    self.resources.hold(("memory", src), res.end_s, start + length, lo, hi)
                self.residency[i] = Residency(name, src, res.start_s, start + length, res.offset_bytes, res.size_bytes)
            self.resources.hold(("link", src, dst), start, start + length)
            self.resources.draw(start, length, draws)
            self.transfers.append(Transfer(name, src, dst, start, start + length, p.tensors[name].size_bytes))
            self._arrive(name, dst, start + length)
            self.open[(name, dst)] = len(self.residency)
            self.residency.append(Residency(name, dst, start, start + length, None, p.tensors[name].size_bytes))
            return
        raise ScheduleError(f"stitch: tensor {name!r} is read from {dst!r} but the piece that produces it "
                            f"does not leave it there, nor where a link could bring it from")

    # -- emitting --------------------------------------------------------------------------------
    def add_overlapped(self, piece: Piece) -> None:
        """Place `piece` op by op and transfer by transfer, each as early as its data and the
        machine allow (overlapped.py), instead of as one rigid copy."""
        self.device.update({piece.ops[x.op]: x.device for x in piece.schedule.slots.values()})
        placed = ItemPlacer(self, piece).place()
        slots, transfers = slots_and_transfers(piece, placed)
        self._emit(piece, slots, transfers, placed.span, placed.offsets)

    def _emit_shifted(self, piece: Piece, delta: float, offsets: dict[int, int]) -> None:
        s = piece.schedule
        slots = [OpSlot(piece.ops[x.op], x.device, x.start_s + delta, x.end_s + delta) for x in s.slots.values()]
        transfers = [Transfer(piece.tensors[t.tensor], t.src_memory, t.dst_memory, t.start_s + delta, t.end_s + delta,
                              t.bytes) for t in s.transfers]
        span = {i: (r.start_s + delta, r.end_s + delta) for i, r in enumerate(s.residency)}
        self._emit(piece, slots, transfers, span, offsets)

    def _emit(self, piece: Piece, slots: list[OpSlot], transfers: list[Transfer], span: dict[int, tuple[float, float]],
              offsets: dict[int, int]) -> None:
        """Record the piece's ops, transfers (full names, final times) and residencies (`span`:
        their final times by index in the piece's schedule; `offsets`: scratchpad addresses)."""
        p, s, sub = self.p, piece.schedule, piece.sub
        for x in slots:
            self.slots[x.op] = x
            for t in p.op_by_name[x.op].outputs:
                self._arrive(t, p.memory_of[x.device], x.end_s)
        for t in transfers:
            self.transfers.append(t)
            self._arrive(t.tensor, t.dst_memory, t.end_s)
        boundary = {(name, home) for name, home, _ in self._boundary_inputs(piece)}
        for i, r in enumerate(s.residency):
            name = piece.tensors[r.tensor]
            start, end = span[i]
            key = (name, r.memory)
            initial_home = (p.is_initial(name) and sub.is_initial(r.tensor) and r.start_s <= 0.0
                            and r.memory == sub.home.get(r.tensor, r.memory))
            if key in boundary or initial_home:
                if r.memory in p.spill_to:
                    raise ScheduleError(f"stitch: tensor {name!r} would have to stay in scratchpad {r.memory!r} "
                                        f"across pieces")
                if initial_home and self.initial_mem.setdefault(name, r.memory) != r.memory:
                    raise ScheduleError(f"stitch: pieces start {name!r} in both {self.initial_mem[name]!r} "
                                        f"and {r.memory!r}")
                if key in self.open:  # one residency from its origin to its last use
                    i = self.open[key]
                    old = self.residency[i]
                    self.residency[i] = Residency(name, r.memory, old.start_s, max(old.end_s, end), None, old.size_bytes)
                    continue
                if key in boundary:
                    raise ScheduleError(f"stitch: tensor {name!r} has no residency in {r.memory!r} to extend")
                start = 0.0  # present from the start of the function
            if r.memory not in p.spill_to:
                self.open[key] = len(self.residency)
            self.last[key] = len(self.residency)
            offset = offsets.get(i, r.offset_bytes) if r.memory in p.spill_to else None
            self.residency.append(Residency(name, r.memory, start, end, offset, r.size_bytes))

    def _arrive(self, t: str, m: str, when: float) -> None:
        key = (t, m)
        self.ready[key] = min(self.ready.get(key, math.inf), when)

    def schedule(self, solver: str, note: str = "") -> Schedule:
        p = self.p
        end = max([x.end_s for x in self.slots.values()] + [t.end_s for t in self.transfers], default=0.0)
        out = []
        for r in self.residency:
            if self._kept_to_end(r.tensor, r.memory):
                r = Residency(r.tensor, r.memory, r.start_s, end, r.offset_bytes, r.size_bytes)
            out.append(Residency(r.tensor, r.memory, r.start_s, r.end_s, -1 if r.offset_bytes is None else r.offset_bytes,
                                 r.size_bytes))
        out = _assign_offsets(p, out)
        self.transfers.sort(key=lambda t: (t.start_s, t.src_memory, t.dst_memory, t.tensor))
        return Schedule(slots=dict(sorted(self.slots.items(), key=lambda kv: p.op_index[kv[0]])), residency=tuple(out), transfers=tuple(self.transfers),
                        solver=solver, status="heuristic", objective=end, bound=None, gap=None, note=note)

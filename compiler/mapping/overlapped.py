"""Overlapped stitching: place a piece op by op and transfer by transfer (stitch.Stitcher.add_overlapped).

A rigid copy of a block's schedule starts only where every resource it uses is free at one common
offset, so the whole copy waits for its most contended resource (e.g. the next layer's weight loads
wait until the current layer's compute is over). Here every op and transfer of the piece keeps its
device or link and the data it reads (the same residencies), but moves on its own: in the order of
the piece's schedule, each goes to the earliest time at which

- what it reads is there: the residency it read in the piece's schedule has been filled (its
  producer ended there, or the transfer filling it arrived; a tensor from an earlier piece when it
  reached the memory this piece reads it from),
- its device or link is free (it may fill a gap earlier pieces left),
- its draws on shared memory bandwidth fit beside those already placed, and
- if it opens a scratchpad residency (an op writing its output there, a transfer filling it): an
  address range is free from that time on (conservative: the residency's end is known only once its
  last user is placed); the address it was solved with if free, else best fit: the smallest free
  gap that fits, against its longer-lived neighbour (`place_in`).

A residency then lasts from its opener's start to the end of its last user in the piece (reader,
outgoing transfer), or to the end of the function for tensors kept there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pimc.errors import ScheduleError
from pimc.mapping.schedule import OpSlot, Transfer
from pimc.mapping.tolerance import close


@dataclass
class _Res:
    """One residency of the piece's schedule and what it becomes."""

    index: int
    name: str  # full-problem tensor name
    memory: str
    size: int
    solved_offset: int | None  # set for scratchpad residencies
    opener: tuple | None = None  # ("op", local name) | ("tr", index) | None: there from the start
    users: int = 0  # items touching it besides its opener, not yet placed
    start: float | None = None
    ready: float | None = None
    end: float = 0.0
    offset: int | None = None
    kept: bool = False


@dataclass
class Placed:
    """New times of a piece: op starts (by local name), transfer starts (by index), residency spans
    (by index) and scratchpad addresses (by residency index)."""

    op_start: dict[str, float] = field(default_factory=dict)
    tr_start: dict[int, float] = field(default_factory=dict)
    span: dict[int, tuple[float, float]] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)


class ItemPlacer:
    """Places one piece on a Stitcher: its resources (resources.Resources), where tensors are
    ready, and its rules for boundary copies (`copy_to`) and residencies kept to the end (`kept`)."""

    def __init__(self, stitcher, piece):
        self.st, self.piece = stitcher, piece
        p, s, sub = stitcher.p, piece.schedule, piece.sub
        self.res = [_Res(i, piece.tensors[r.tensor], r.memory, p.tensors[piece.tensors[r.tensor]].size_bytes,
                         r.offset_bytes if r.memory in p.spill_to and r.offset_bytes is not None else None)
                    for i, r in enumerate(s.residency)]
        by_key: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(s.residency):
            by_key.setdefault((r.tensor, r.memory), []).append(i)
        for ids in by_key.values():
            ids.sort(key=lambda i: (s.residency[i].start_s, i))
        self.by_key = by_key
        self.transfers = list(s.transfers)
        self.reads: dict[tuple, list[int]] = {}  # item -> residencies whose data it needs
        self.touches: dict[tuple, list[int]] = {}  # item -> residencies it keeps alive (not opened)
        self.opens: dict[tuple, list[int]] = {}
        for j, tr in enumerate(self.transfers):
            i = self._opened(tr.tensor, tr.dst_memory, tr.start_s)
            self._open(("tr", j), i)
            src = self._covering(tr.tensor, tr.src_memory, tr.start_s, tr.end_s, f"transfer of {tr.tensor!r}")
            self.reads[("tr", j)] = [src]
            self._touch(("tr", j), src)
        for x in s.slots.values():
            op = sub.op_by_name[x.op]
            m = sub.memory_of[x.device]
            item = ("op", x.op)
            self.reads[item] = []
            for t in op.outputs:
                i = self._opened(t, m, x.start_s)
                if i is not None and not (sub.is_initial(t) and s.residency[i].start_s <= 0.0):
                    self._open(item, i)
            for t in dict.fromkeys((*op.inputs, *op.outputs)):
                i = self._covering(t, m, x.start_s, x.end_s, f"op {x.op!r}")
                if item not in self.opens or i not in self.opens[item]:
                    self._touch(item, i)
                    if t in op.inputs and sub.producer.get(t) != x.op:
                        self.reads[item].append(i)
        for r, res in zip(s.residency, self.res):
            if res.opener is None and not (r.start_s <= 0.0 and sub.is_initial(r.tensor)):
                raise ScheduleError(f"stitch: residency of {r.tensor!r} in {r.memory!r} at {r.start_s} s has no "
                                    f"op or transfer that opens it")
            if res.opener is None and res.solved_offset is not None:
                raise ScheduleError(f"stitch: tensor {res.name!r} would have to stay in scratchpad {r.memory!r} "
                                    f"across pieces")
            res.kept = stitcher.kept(piece, r)

    # -- the piece's structure -------------------------------------------------------------------
    def _opened(self, t: str, m: str, at: float) -> int | None:
        """The residency of t in m that starts at `at` (the one an op or transfer opens)."""
        for i in self.by_key.get((t, m), ()):
            if close(self.piece.schedule.residency[i].start_s, at):
                return i
        return None

    def _open(self, item: tuple, i: int | None) -> None:
        if i is None:
            raise ScheduleError(f"stitch: {item[0]} {item[1]!r} of the piece opens no residency")
        if self.res[i].opener is None:
            self.res[i].opener = item
        self.opens.setdefault(item, []).append(i)

    def _touch(self, item: tuple, i: int) -> None:
        self.touches.setdefault(item, []).append(i)
        self.res[i].users += 1

    def _covering(self, t: str, m: str, a: float, b: float, what: str) -> int:
        """The latest-starting residency of t in m covering [a, b]."""
        rs = self.piece.schedule.residency
        hit = None
        for i in self.by_key.get((t, m), ()):
            r = rs[i]
            if (r.start_s <= a or close(r.start_s, a)) and (r.end_s >= b or close(r.end_s, b)):
                hit = i
        if hit is None:
            raise ScheduleError(f"stitch: {what} uses {t!r} in {m!r} where the piece has no residency")
        return hit

    # -- placing ---------------------------------------------------------------------------------
    def place(self) -> Placed:
        st, p, s = self.st, self.st.p, self.piece.schedule
        out = Placed()
        for res, r in zip(self.res, s.residency):
            if res.opener is None:
                res.start, res.ready = 0.0, self._there_before(res, r.tensor)
                if res.users == 0:
                    self._finish(res, out)
        items = [((x.start_s, 0, p.op_index[self.piece.ops[x.op]]), ("op", x.op)) for x in s.slots.values()]
        items += [((tr.start_s, 1, j), ("tr", j)) for j, tr in enumerate(self.transfers)]
        for _, item in sorted(items):
            if item[0] == "op":
                x = s.slots[item[1]]
                name = self.piece.ops[x.op]
                key, dur = ("device", x.device), x.end_s - x.start_s
                draws = st.resources.op_draws(name, x.device)
            else:
                tr = self.transfers[item[1]]
                name = self.piece.tensors[tr.tensor]
                key, dur = ("link", tr.src_memory, tr.dst_memory), tr.end_s - tr.start_s
                draws = st.resources.transfer_draws(name, tr.src_memory, tr.dst_memory)
            start = 0.0
            for i in self.reads[item]:
                if self.res[i].ready is None:
                    raise ScheduleError(f"stitch: {item[0]} {item[1]!r} reads {self.res[i].name!r} before the "
                                        f"piece fills it")
                start = max(start, self.res[i].ready)
            start, offsets = self._earliest(key, start, dur, draws, self.opens.get(item, []))
            st.resources.hold(key, start, start + dur)
            st.resources.draw(start, dur, draws)
            if item[0] == "op":
                out.op_start[item[1]] = start
            else:
                out.tr_start[item[1]] = start
            for i in self.opens.get(item, []):
                res = self.res[i]
                if res.start is None:
                    res.start, res.ready = start, start + dur
                    res.end = max(res.end, start + dur)  # a user placed earlier may have extended it
                    res.offset = offsets.get(i)
                    if res.users == 0:
                        self._finish(res, out)
            for i in self.touches.get(item, []):
                res = self.res[i]
                res.end = max(res.end, start + dur)
                res.users -= 1
                if res.users == 0 and res.start is not None:
                    self._finish(res, out)
        unfinished = [res.name for res in self.res if res.index not in out.span]
        if unfinished:
            raise ScheduleError(f"stitch: residency of {unfinished[0]!r} was never closed")
        return out

    def _there_before(self, res: _Res, local: str) -> float:
        """When a tensor the piece finds in place at its start is there: 0 for the function's own
        inputs, weights and state; for one an earlier piece produced, when it reached this memory."""
        st = self.st
        if res.name not in st.p.producer or local in self.piece.sub.producer:
            return 0.0
        if (res.name, res.memory) not in st.ready:
            st.copy_to(res.name, res.memory)
        return st.ready[(res.name, res.memory)]

    def _finish(self, res: _Res, out: Placed) -> None:
        out.span[res.index] = (res.start, res.end)
        if res.offset is not None:
            out.offsets[res.index] = res.offset
            end = math.inf if res.kept else res.end
            self.st.resources.hold(("memory", res.memory), res.start, end, res.offset, res.offset + res.size)

    def _earliest(self, key: tuple, start: float, dur: float, draws, opens: list[int]) -> tuple[float, dict[int, int]]:
        """The earliest start >= `start` where the resource is free, the draws fit and every
        scratchpad residency the item opens has an address free from then on."""
        while True:
            start = self.st.resources.earliest(key, start, dur, draws)
            offsets, later = self._addresses(start, opens)
            if offsets is not None:
                return start, offsets
            start = later

    def _addresses(self, start: float, opens: list[int]):
        """Addresses from `start` on for the scratchpad residencies `opens`, or (None, the next
        time worth trying)."""
        offsets: dict[int, int] = {}
        mine: dict[str, list[tuple[int, int, float]]] = {}
        for i in opens:
            res = self.res[i]
            if res.solved_offset is None:
                continue
            m = res.memory
            busy = self.st.resources.get(("memory", m))
            taken = [] if busy is None else busy.ranges(start, math.inf)
            taken += [(r.offset, r.offset + r.size, math.inf) for r in self.res
                      if r.memory == m and r.offset is not None and self._open_now(r)]
            taken += mine.get(m, [])
            off = place_in(taken, res.size, self.st.p.capacity_bytes[m], res.solved_offset)
            if off is None:
                later = [e for _, _, e in taken if start < e < math.inf]
                if not later:
                    raise ScheduleError(f"stitch: scratchpad {m!r} has no room for {res.name!r} "
                                        f"({res.size} bytes)")
                return None, min(later)
            offsets[i] = off
            mine.setdefault(m, []).append((off, off + res.size, math.inf))
        return offsets, start

    @staticmethod
    def _open_now(r: _Res) -> bool:
        """Opened in this piece and not yet closed (its end unknown: it holds its range on)."""
        return r.start is not None and r.users > 0


def place_in(taken: list[tuple[int, int, float]], size: int, capacity: int, prefer: int) -> int | None:
    """An address for `size` bytes beside the ranges `taken` (lo, hi, until when): `prefer` if
    free; else in the smallest free gap that fits (best fit), against the neighbour that stays
    longer (a memory's ends stay forever), so that what frees first frees next to other free space
    (two large tensors alternating in a scratchpad sit at its two ends: double buffering)."""
    if prefer + size <= capacity and not any(lo < prefer + size and prefer < hi for lo, hi, _ in taken):
        return prefer
    merged: list[list] = []  # [lo, hi, until] of the union of taken ranges
    for lo, hi, until in sorted(taken):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
            merged[-1][2] = max(merged[-1][2], until)
        else:
            merged.append([lo, hi, until])
    edges = [[0, 0, math.inf], *merged, [capacity, capacity, math.inf]]
    best = None
    for below, above in zip(edges, edges[1:]):
        g0, g1 = below[1], above[0]
        if g1 - g0 < size:
            continue
        off = g0 if below[2] >= above[2] else g1 - size
        key = (g1 - g0, off)
        if best is None or key < best[0]:
            best = (key, off)
    return None if best is None else best[1]


def slots_and_transfers(piece, placed: Placed):
    """The piece's ops and transfers at their new times, with full-problem names."""
    s = piece.schedule
    slots = [OpSlot(piece.ops[x.op], x.device, placed.op_start[x.op], placed.op_start[x.op] + (x.end_s - x.start_s))
             for x in s.slots.values()]
    transfers = [Transfer(piece.tensors[t.tensor], t.src_memory, t.dst_memory, placed.tr_start[j],
                          placed.tr_start[j] + (t.end_s - t.start_s), t.bytes) for j, t in enumerate(s.transfers)]
    return slots, transfers

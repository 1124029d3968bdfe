"""The CP-SAT model of a MappingProblem: device choice, timing, transfers, memory and spills.

Variables (time in TimeScale units):
- per op: start, end, one optional interval per capable device (exactly one present); NoOverlap
  per device.
- per tensor t and memory m where t may live: a few *segments* (COSMA's allocation without time
  steps): each a present flag, a time interval and an address; per memory all segments are
  rectangles (time x address) in one NoOverlap2D inside the capacity, with a redundant cumulative.
  Segment 0 is where t is born (its home: producer's memory, or where it starts at time 0) or its
  first copy (a transfer from home). Later segments are reloads from the scratchpad's backing memory
  (`spill_to`), which needs a writeback (spill) of t unless t's home is that backing memory; a
  reader in the backing memory may read the spilled copy instead of a copy of its own.
- per transfer: an optional fixed-size interval on its directed link; NoOverlap per link.
- per shared memory (bandwidth.py): one cumulative over the op-on-device and transfer intervals
  that draw on it, demands in MB/s rounded up, capacity its bandwidth in MB/s rounded down, so an
  accepted schedule never overdraws it (ops are delayed, not slowed: conservative), plus the
  redundant sum(demand x duration) <= capacity x makespan, which lets CP-SAT prove optimality (without
  it the edge-soc decode block stopped at a 0.4% gap). Memories whose users cannot overdraw them get
  nothing, and models without one are unchanged.

Simplifications (each keeps schedules valid, possibly not globally optimal): one copy segment per
(tensor, non-home memory) and reloads only where t's home is fixed by the problem (a fixed `home`,
or a producer that only devices of one memory can run), at most `max_reloads` per (tensor, memory)
unless `reloads` asks for more (the warm start's count, so its schedule is an assignment of the
model); copies come from home; weights and state stay pinned in their home memory for the whole
schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from pimc.mapping.bandwidth import Contention
from pimc.mapping.cpsat_time import TimeScale
from pimc.mapping.problem import MappingProblem

BANDWIDTH_UNIT = 1e6
"""Bytes/s per integer step of a bandwidth demand (MB/s): small integers for the cumulative."""


@dataclass
class Transfer:
    tensor: str
    src: str
    dst: str
    present: cp_model.IntVar
    start: cp_model.IntVar
    end: cp_model.IntVar
    duration: int
    role: str  # "copy" | "reload" | "writeback"


@dataclass
class Segment:
    tensor: str
    memory: str
    index: int
    present: cp_model.IntVar
    start: cp_model.IntVar
    end: cp_model.IntVar
    ready: cp_model.IntVar | int  # when the data can be read
    offset: cp_model.IntVar | None
    transfers: list[Transfer] = field(default_factory=list)  # those that fill it
    role: str = "home"  # "home" | "copy" | "wb"


class CpsatModel:
    """Builds the model; `segments`, `transfers`, `x`, `start`, `end`, `makespan` are read by the
    objective, hint and extraction code."""

    def __init__(self, problem: MappingProblem, scale: TimeScale, max_reloads: int = 1,
                 reloads: dict[tuple[str, str], int] | None = None, min_horizon: int = 0):
        """`reloads[(t, m)]`: reload segments of t in scratchpad m beyond `max_reloads` (where the
        model allows reloads); `min_horizon`: a time every schedule of interest ends by (a warm
        start's makespan)."""
        self.p = problem
        self.scale = scale
        self.max_reloads = max_reloads
        self.reloads = dict(reloads or {})
        self.m = cp_model.CpModel()
        self.dur = {k: scale.units(c.latency_s) for k, c in problem.costs.items()}
        self.horizon = max(self._horizon(), min_horizon)
        self.x: dict[tuple[str, str], cp_model.IntVar] = {}
        self.start: dict[str, cp_model.IntVar] = {}
        self.op_interval: dict[tuple[str, str], cp_model.IntervalVar] = {}
        self.contention = Contention.of(problem, BANDWIDTH_UNIT)
        self.end: dict[str, cp_model.IntVar] = {}
        self.segments: dict[tuple[str, str], list[Segment]] = {}
        self.transfers: list[Transfer] = []
        self.writeback: dict[str, Transfer] = {}
        self.wb_seg: dict[str, Segment] = {}
        self.home_seg: dict[tuple[str, str], Segment] = {}
        self.cover: dict[tuple[str, str, str], tuple[list[Segment], list]] = {}
        self.makespan = self.m.new_int_var(0, self.horizon, "makespan")
        self._false = self.m.new_constant(0)
        self._true = self.m.new_constant(1)
        self._build()

    # -- helpers ---------------------------------------------------------------------------------
    def _horizon(self) -> int:
        p = self.p
        h = sum(max(self.dur[(o.name, d)] for d in p.capable_devices(o.name)) for o in p.ops)
        per_tensor = max((self.scale.units(lk.time_s(1)) for lk in p.links.values()), default=0)
        most = {}
        for (t, _), n in self.reloads.items():
            most[t] = max(most.get(t, 0), n)
        for t in p.tensors.values():
            worst = max((self.scale.units(lk.time_s(t.size_bytes)) for lk in p.links.values()), default=0)
            h += worst * (3 + 2 * max(self.max_reloads, most.get(t.name, 0))) * max(1, len(p.devices))
        return max(1, h + per_tensor)

    def _and(self, a, b, name: str):
        """A literal equal to a AND b (constants folded)."""
        if a is self._false or b is self._false:
            return self._false
        if a is self._true:
            return b
        if b is self._true:
            return a
        z = self.m.new_bool_var(name)
        self.m.add_implication(z, a)
        self.m.add_implication(z, b)
        self.m.add_bool_or([a.Not(), b.Not(), z])
        return z

    def _or(self, lits: list, name: str):
        lits = [v for v in lits if v is not self._false]
        if any(v is self._true for v in lits):
            return self._true
        if not lits:
            return self._false
        if len(lits) == 1:
            return lits[0]
        z = self.m.new_bool_var(name)
        self.m.add_max_equality(z, lits)
        return z

    def _transfer(self, t: str, src: str, dst: str, present, role: str, name: str) -> Transfer:
        link = self.p.links[(src, dst)]
        d = self.scale.units(link.time_s(self.p.tensors[t].size_bytes))
        s = self.m.new_int_var(0, self.horizon, f"{name}_s")
        e = self.m.new_int_var(0, self.horizon, f"{name}_e")
        iv = self.m.new_optional_interval_var(s, d, e, present, name)
        tr = Transfer(t, src, dst, present, s, e, d, role)
        tr.interval = iv  # type: ignore[attr-defined]
        self.m.add(self.makespan >= e).only_enforce_if(present)
        self.transfers.append(tr)
        return tr

    # -- the model -------------------------------------------------------------------------------
    def _build(self) -> None:
        p, m = self.p, self.m
        mem_devices: dict[str, list[str]] = {}
        for d in p.devices:
            mem_devices.setdefault(p.memory_of[d], []).append(d)
        per_device: dict[str, list] = {d: [] for d in p.devices}
        self.inmem: dict[tuple[str, str], object] = {}
        for op in p.ops:
            s = m.new_int_var(0, self.horizon, f"s_{op.name}")
            e = m.new_int_var(0, self.horizon, f"e_{op.name}")
            self.start[op.name], self.end[op.name] = s, e
            lits = []
            for d in p.capable_devices(op.name):
                x = m.new_bool_var(f"x_{op.name}_{d}")
                self.x[(op.name, d)] = x
                iv = m.new_optional_interval_var(s, self.dur[(op.name, d)], e, x, f"i_{op.name}_{d}")
                self.op_interval[(op.name, d)] = iv
                per_device[d].append(iv)
                lits.append(x)
            m.add_exactly_one(lits)
            m.add(self.makespan >= e)
            for mem in sorted({p.memory_of[d] for d in p.capable_devices(op.name)}):
                self.inmem[(op.name, mem)] = self._or(
                    [self.x[(op.name, d)] for d in p.capable_devices(op.name) if p.memory_of[d] == mem],
                    f"in_{op.name}_{mem}")
        for d in p.devices:
            if len(per_device[d]) > 1:
                m.add_no_overlap(per_device[d])
        # Data dependences (transfers, if any, add their own delays below).
        for u, v in p.graph.edges:
            m.add(self.start[v] >= self.end[u])
        for t in p.tensors:
            if p.uses[t]:
                self._tensor(t)
        self._memories()
        links: dict[tuple[str, str], list] = {}
        for tr in self.transfers:
            links.setdefault((tr.src, tr.dst), []).append(tr.interval)  # type: ignore[attr-defined]
        for ivs in links.values():
            if len(ivs) > 1:
                m.add_no_overlap(ivs)
        self._bandwidth()

    def _bandwidth(self) -> None:
        """A cumulative per shared memory over the intervals that draw on it."""
        c = self.contention
        if c is None:
            return
        use: dict[str, tuple[list, list[int]]] = {mem: ([], []) for mem in c.capacity}
        work: dict[str, list] = {mem: [] for mem in c.capacity}  # (demand x duration, presence)
        for key, iv in self.op_interval.items():
            for mem, demand in c.op(*key):
                use[mem][0].append(iv)
                use[mem][1].append(demand)
                work[mem].append((demand * self.dur[key], self.x[key]))
        for tr in self.transfers:
            for mem, demand in c.transfer(tr.tensor, tr.src, tr.dst):
                use[mem][0].append(tr.interval)  # type: ignore[attr-defined]
                use[mem][1].append(demand)
                work[mem].append((demand * tr.duration, tr.present))
        for mem, (ivs, demands) in sorted(use.items()):
            if len(ivs) > 1:
                self.m.add_cumulative(ivs, demands, c.capacity[mem])
                # redundant: the bytes drawn fit under capacity x makespan (a bound the search sees)
                self.m.add(sum(w * lit for w, lit in work[mem]) <= c.capacity[mem] * self.makespan)

    def _inmem(self, op: str, mem: str):
        return self.inmem.get((op, mem), self._false)

    def _homes(self, t: str) -> dict[str, object]:
        """memory -> literal 'home of t is this memory'."""
        p = self.p
        prod = p.producer.get(t)
        if prod is not None:
            return {mem: lit for (o, mem), lit in self.inmem.items() if o == prod}
        if t in p.home:
            return {p.home[t]: self._true}
        first = p.uses[t][0]
        return {mem: lit for (o, mem), lit in self.inmem.items() if o == first}

    def _tensor(self, t: str) -> None:
        p, m = self.p, self.m
        kind = p.tensors[t].kind
        prod = p.producer.get(t)
        homes = self._homes(t)
        consumers = [c for c in p.uses[t] if c != prod]
        if kind == "weight":  # weights read by a resident device are homed in its memory
            for c in consumers:
                for d in p.capable_devices(c):
                    if d in p.resident_devices:
                        home_lit = homes.get(p.memory_of[d], self._false)
                        if home_lit is self._false:
                            m.add(self.x[(c, d)] == 0)
                        elif home_lit is not self._true:
                            m.add_implication(self.x[(c, d)], home_lit)
        static_home = next(iter(homes)) if len(homes) == 1 else None
        for mem, lit in sorted(homes.items()):  # where t is born (first, copies are made from it)
            segs = self._segments(t, mem, lit, is_home=True, static_home=static_home)
            self.home_seg[(t, mem)] = seg = segs[0]
            if prod is not None:
                m.add(seg.start == self.start[prod]).only_enforce_if(seg.present)
                m.add(seg.end >= self.end[prod]).only_enforce_if(seg.present)
            else:
                m.add(seg.start == 0).only_enforce_if(seg.present)
            if p.pinned(t) or (kind == "output" and not self._writes_back(t, mem, static_home)):
                m.add(seg.end == self.makespan).only_enforce_if(seg.present)
        mems = sorted(set(homes) | {mem for c in consumers for (o, mem) in self.inmem if o == c})
        for mem in mems:
            segs = list(self.segments.get((t, mem), []))
            hlit = homes.get(mem, self._false)
            readers = [self._inmem(c, mem) for c in consumers if self._inmem(c, mem) is not self._false]
            if readers and hlit is not self._true:
                need = self._or(readers, f"need_{t}_{mem}")
                copy = self._and(need, hlit.Not() if hlit is not self._false else self._true, f"copy_{t}_{mem}")
                if any(s.role == "wb" for s in segs):  # readers here may read the spilled copy instead
                    spare = m.new_bool_var(f"copy_{t}_{mem}_used")
                    m.add_implication(spare, copy)
                    copy = spare
                csegs = self._segments(t, mem, copy, is_home=False, static_home=static_home)
                self._fill_copy(t, mem, csegs[0], homes, prod)
                segs += csegs
            for c in consumers:  # each reader in this memory reads inside one present segment
                lit = self._inmem(c, mem)
                if lit is self._false:
                    continue
                if len(segs) == 1:
                    self._covers(segs[0], c, lit)
                    continue
                cov = [m.new_bool_var(f"cov_{c}_{t}_{mem}_{k}") for k in range(len(segs))]
                self.cover[(c, t, mem)] = (segs, cov)
                m.add(sum(cov) == lit)
                for k, seg in enumerate(segs):
                    self._covers(seg, c, cov[k])

    def _fill_copy(self, t: str, mem: str, seg: Segment, homes: dict, prod: str | None) -> None:
        """Segment `seg` of t in `mem` is filled by a transfer from t's home, whichever it is."""
        m = self.m
        fills = []
        for h, hlit in sorted(homes.items()):
            if h == mem:
                continue
            z = self._and(hlit, seg.present, f"cp_{t}_{h}_{mem}")
            if z is self._false:
                continue
            if (h, mem) not in self.p.links:
                m.add(z == 0)
                continue
            tr = self._transfer(t, h, mem, z, "copy", f"tr_{t}_{h}_{mem}")
            seg.transfers.append(tr)
            fills.append(z)
            if prod is not None:
                m.add(tr.start >= self.end[prod]).only_enforce_if(z)
            m.add(seg.start == tr.start).only_enforce_if(z)
            m.add(seg.ready == tr.end).only_enforce_if(z)
            m.add(seg.end >= tr.end).only_enforce_if(z)
            m.add(self.home_seg[(t, h)].end >= tr.end).only_enforce_if(z)
        if not fills:
            m.add(seg.present == 0)
        else:
            m.add_bool_or(fills).only_enforce_if(seg.present)

    def _covers(self, seg: Segment, op: str, lit) -> None:
        m = self.m
        m.add_implication(lit, seg.present)
        m.add(seg.start <= self.start[op]).only_enforce_if(lit)
        m.add(seg.end >= self.end[op]).only_enforce_if(lit)
        m.add(self.start[op] >= seg.ready).only_enforce_if(lit)

    def _writes_back(self, t: str, mem: str, static_home: str | None) -> bool:
        """An output born in a scratchpad is written back to its backing memory (compulsory)."""
        return self.p.tensors[t].kind == "output" and mem in self.p.spill_to and static_home == mem

    def _segments(self, t: str, mem: str, present0, is_home: bool, static_home: str | None) -> list[Segment]:
        """Segment 0 (present iff present0) plus the reload segments possible for t in `mem`;
        appended to self.segments[(t, mem)]."""
        p, m = self.p, self.m
        size = p.tensors[t].size_bytes
        cap = p.capacity_bytes[mem]
        backing = p.spill_to.get(mem)
        reloads = 0
        if backing is not None and static_home is not None:
            # a copy of a tensor homed in the backing memory, or a tensor born here; a weight's copy
            # only as often as the warm start reloads it (it rarely pays: its home copy stays);
            # state is never reloaded (its writers update the home copy)
            if (not is_home and static_home == backing and not p.pinned(t)) or (
                    is_home and static_home == mem and t in p.producer and not p.pinned(t)):
                reloads = max(self.max_reloads, self.reloads.get((t, mem), 0))
            elif not is_home and static_home == backing and p.tensors[t].kind == "weight":
                reloads = self.reloads.get((t, mem), 0)
        base = len(self.segments.get((t, mem), []))
        segs: list[Segment] = []
        for k in range(1 + reloads):
            name = f"{t}@{mem}#{base + k}"
            present = present0 if k == 0 else m.new_bool_var(f"p_{name}")
            s = m.new_int_var(0, self.horizon, f"a_{name}")
            e = m.new_int_var(0, self.horizon, f"b_{name}")
            if is_home and k == 0:
                ready = self.end[p.producer[t]] if t in p.producer else 0
            else:
                ready = m.new_int_var(0, self.horizon, f"r_{name}")
            off = m.new_int_var(0, max(0, cap - size), f"o_{name}") if size > 0 else None
            if size > cap:
                m.add(present == 0)
            m.add(e >= s)
            segs.append(Segment(t, mem, base + k, present, s, e, ready, off, role="home" if is_home else "copy"))
        for a, b in zip(segs, segs[1:]):  # reloads in time order, each after the previous ends
            m.add_implication(b.present, a.present)
            m.add(b.start >= a.end).only_enforce_if(b.present)
        self.segments.setdefault((t, mem), []).extend(segs)
        wb = None
        if is_home and static_home == mem and backing is not None and (reloads or self._writes_back(t, mem, static_home)):
            wb = self._writeback(t, mem, backing, segs[0], forced=p.tensors[t].kind == "output")
        for seg in segs[1:]:
            tr = self._transfer(t, backing, mem, seg.present, "reload", f"rl_{t}_{mem}_{seg.index}")
            seg.transfers.append(tr)
            m.add(seg.start == tr.start).only_enforce_if(seg.present)
            m.add(seg.ready == tr.end).only_enforce_if(seg.present)
            m.add(seg.end >= tr.end).only_enforce_if(seg.present)
            if wb is not None:  # reload the spilled copy
                m.add_implication(seg.present, wb.present)
                m.add(tr.start >= wb.end).only_enforce_if(seg.present)
                m.add(self.wb_seg[t].end >= tr.end).only_enforce_if(seg.present)
            else:  # reload from t's home in the backing memory
                m.add(self.home_seg[(t, backing)].end >= tr.end).only_enforce_if(seg.present)
        return segs

    def _writeback(self, t: str, mem: str, backing: str, seg0: Segment, forced: bool) -> Transfer:
        """Spill t from scratchpad `mem` to `backing`; its copy there is one more segment."""
        m = self.m
        present = self._true if forced else m.new_bool_var(f"wb_{t}")
        tr = self._transfer(t, mem, backing, present, "writeback", f"wb_{t}_{mem}")
        self.writeback[t] = tr
        m.add(tr.start >= self.end[self.p.producer[t]]).only_enforce_if(present)
        m.add(seg0.end >= tr.end).only_enforce_if(present)
        size = self.p.tensors[t].size_bytes
        cap = self.p.capacity_bytes[backing]
        name = f"{t}@{backing}#wb"
        bseg = Segment(t, backing, len(self.segments.get((t, backing), [])), present,
                       m.new_int_var(0, self.horizon, f"a_{name}"), m.new_int_var(0, self.horizon, f"b_{name}"),
                       tr.end, m.new_int_var(0, max(0, cap - size), f"o_{name}") if size > 0 else None, [tr], "wb")
        m.add(bseg.start == tr.start).only_enforce_if(present)
        m.add(bseg.end >= tr.end).only_enforce_if(present)
        if self.p.tensors[t].kind == "output":
            m.add(bseg.end == self.makespan).only_enforce_if(present)
        if size > cap:
            m.add(present == 0)
        self.segments.setdefault((t, backing), []).append(bseg)
        self.wb_seg[t] = bseg
        return tr

    def _memories(self) -> None:
        m = self.m
        by_mem: dict[str, list[Segment]] = {}
        for segs in self.segments.values():
            for seg in segs:
                if seg.offset is not None:
                    by_mem.setdefault(seg.memory, []).append(seg)
        for mem, segs in sorted(by_mem.items()):
            xs, ys, demands = [], [], []
            for seg in segs:
                size = self.p.tensors[seg.tensor].size_bytes
                name = f"{seg.tensor}@{mem}#{seg.index}"
                length = m.new_int_var(0, self.horizon, f"len_{name}")
                xs.append(m.new_optional_interval_var(seg.start, length, seg.end, seg.present, f"t_{name}"))
                ys.append(m.new_optional_fixed_size_interval_var(seg.offset, size, seg.present, f"y_{name}"))
                demands.append(size)
            if len(segs) > 1:
                m.add_no_overlap_2d(xs, ys)
                m.add_cumulative(xs, demands, self.p.capacity_bytes[mem])

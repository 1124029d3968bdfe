"""Shared memory bandwidth: ops that stream from one memory at 0.6 x its bandwidth each run one
after the other, at 0.4 x they overlap -- in CP-SAT, the heuristics, the stitcher and the checker;
transfers draw from the memories at both ends; CP-SAT equals a brute-force optimum (serial schedule
generation over every assignment and order) on small random problems; targets whose devices cannot
overdraw a memory keep their models unchanged."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random

import networkx as nx
import pytest

from pimc.errors import ScheduleError
from pimc.mapping import (
    Cost, LinkCost, MapOptions, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule,
    list_schedule, map_problem, schedule_violations,
)
from pimc.mapping.bandwidth import Contention, Profile, shared_memories
from pimc.mapping.cpsat_model import CpsatModel
from pimc.mapping.cpsat_solve import SolveOptions, solve_cpsat
from pimc.mapping.cpsat_time import TimeScale
from pimc.mapping.mapper import block_problem
from pimc.mapping.stitch import Piece, Stitcher

BW = 1e9  # bytes/s of the shared DRAM
MS = 1e-3


def streaming_pair(fraction: float, bandwidth: bool = True) -> MappingProblem:
    """p on device a and q on device b, independent, 1 ms each, both computing from `dram` and each
    moving fraction x BW x 1 ms bytes there (so each draws fraction x BW for its whole interval)."""
    tensors = {n: Tensor(n, 100, kind) for n, kind in
               (("x0", "input"), ("x1", "input"), ("y0", "output"), ("y1", "output"))}
    nbytes = fraction * BW * MS
    return MappingProblem(
        ops=(OpNode("p", "k", ("x0",), ("y0",)), OpNode("q", "k", ("x1",), ("y1",))), tensors=tensors,
        devices=("a", "b"), memory_of={"a": "dram", "b": "dram"}, capacity_bytes={"dram": 10**6},
        costs={("p", "a"): Cost(MS, 1.0, nbytes), ("q", "b"): Cost(MS, 1.0, nbytes)},
        offchip_memories=frozenset({"dram"}), memory_bandwidth={"dram": BW} if bandwidth else {})


def overlapped(p: MappingProblem, s):
    """s with q moved to start with p (both at 0)."""
    slots = dict(s.slots)
    slots["q"] = dataclasses.replace(slots["q"], start_s=0.0, end_s=MS)
    slots["p"] = dataclasses.replace(slots["p"], start_s=0.0, end_s=MS)
    return dataclasses.replace(s, slots=slots)


# -- the hand-computed pair ---------------------------------------------------------------------

def test_pair_at_0_6_is_serialized_by_cpsat_heft_and_baselines():
    p = streaming_pair(0.6)
    assert shared_memories(p) == ("dram",)
    s = solve_cpsat(p, SolveOptions(time_limit_s=5.0))
    check_schedule(p, s)
    assert s.status == "OPTIMAL" and s.makespan_s == pytest.approx(2 * MS, rel=1e-12)
    assert s.bound == pytest.approx(2 * MS, rel=1e-9)
    for heuristic in (list_schedule(p), baseline(p, "heft"), baseline(p, "topo-lru")):
        check_schedule(p, heuristic)
        assert heuristic.makespan_s == pytest.approx(2 * MS, rel=1e-12)
    mapped = map_problem(p)
    check_schedule(p, mapped)
    assert mapped.makespan_s == pytest.approx(2 * MS, rel=1e-12)


def test_lower_bound_counts_the_bytes_a_shared_memory_must_deliver():
    from pimc.mapping.bounds import lower_bound
    # 2 x 0.6 x BW x 1 ms bytes at BW: 1.2 ms, above the 1 ms critical path and work per device.
    assert lower_bound(streaming_pair(0.6), Objective()) == pytest.approx(1.2 * MS)
    assert lower_bound(streaming_pair(0.6, bandwidth=False), Objective()) == pytest.approx(MS)
    p = random_streaming(1)
    assert lower_bound(p, Objective()) <= map_problem(p).makespan_s * (1 + 1e-9)


def test_pair_at_0_4_overlaps():
    p = streaming_pair(0.4)
    s = solve_cpsat(p, SolveOptions(time_limit_s=5.0))
    check_schedule(p, s)
    assert s.status == "OPTIMAL" and s.makespan_s == pytest.approx(MS, rel=1e-12)
    assert list_schedule(p).makespan_s == pytest.approx(MS, rel=1e-12)
    assert baseline(p, "heft").makespan_s == pytest.approx(MS, rel=1e-12)


def test_without_a_bandwidth_the_pair_overlaps_as_before():
    p = streaming_pair(0.6, bandwidth=False)
    assert shared_memories(p) == ()
    assert solve_cpsat(p, SolveOptions(time_limit_s=5.0)).makespan_s == pytest.approx(MS, rel=1e-12)
    assert list_schedule(p).makespan_s == pytest.approx(MS, rel=1e-12)


def test_checker_names_the_memory_the_time_and_the_sum():
    p = streaming_pair(0.6)
    bad = overlapped(p, list_schedule(p))
    wrong = [v for v in schedule_violations(p, bad) if "bandwidth" in v]
    assert wrong == ["memory 'dram' bandwidth exceeded at t=0.0 s: ops and transfers draw 1.2e+09 bytes/s, "
                     "bandwidth 1e+09 bytes/s"]
    with pytest.raises(ScheduleError, match="memory 'dram' bandwidth exceeded"):
        check_schedule(p, bad)
    check_schedule(streaming_pair(0.4), overlapped(p, list_schedule(streaming_pair(0.4))))
    touching = list_schedule(p)  # p [0, 1 ms], q [1 ms, 2 ms]: touching intervals do not overlap
    check_schedule(p, touching)


# -- transfers draw from both ends --------------------------------------------------------------

def stream_and_copy() -> MappingProblem:
    """p on cpu streams 0.7 x BW from dram for 1 ms; q on npu (sram, not limited) needs x1 copied
    from dram over a 0.5 x BW link: 50 kB take 0.1 ms, drawing 0.5 x BW from dram meanwhile; q
    takes 2 ms. p and the copy cannot overlap (1.2 x BW)."""
    tensors = {"x0": Tensor("x0", 100, "input"), "x1": Tensor("x1", 50_000, "input"),
               "y0": Tensor("y0", 100, "output"), "y1": Tensor("y1", 100, "output")}
    link = LinkCost(0.5 * BW, 0.0, 0.0)
    return MappingProblem(
        ops=(OpNode("p", "k", ("x0",), ("y0",)), OpNode("q", "k", ("x1",), ("y1",))), tensors=tensors,
        devices=("cpu", "npu"), memory_of={"cpu": "dram", "npu": "sram"},
        capacity_bytes={"dram": 10**6, "sram": 10**6},
        costs={("p", "cpu"): Cost(MS, 1.0, 0.7 * BW * MS), ("q", "npu"): Cost(2 * MS, 1.0, 0.0)},
        links={("dram", "sram"): link, ("sram", "dram"): link}, offchip_memories=frozenset({"dram"}),
        home={"x0": "dram", "x1": "dram"}, memory_bandwidth={"dram": BW})


def test_a_transfer_draws_from_the_shared_memory():
    p = stream_and_copy()
    assert Contention.of(p).transfer("x1", "dram", "sram") == (("dram", int(0.5 * BW)),)  # sram: not limited
    # Best: copy [0, 0.1 ms], then p [0.1, 1.1 ms] beside q [0.1, 2.1 ms]: 2.1 ms (without the limit
    # p would run at 0 beside the copy; q still ends at 2.1 ms, so the limit costs nothing here).
    s = solve_cpsat(p, SolveOptions(time_limit_s=5.0))
    check_schedule(p, s)
    assert s.status == "OPTIMAL" and s.makespan_s == pytest.approx(2.1 * MS, rel=1e-9)
    (copy,) = s.transfers
    assert copy.end_s <= s.slots["p"].start_s + 1e-15 or s.slots["p"].end_s <= copy.start_s + 1e-15
    h = list_schedule(p)
    check_schedule(p, h)
    (copy,) = h.transfers
    assert copy.end_s <= h.slots["p"].start_s + 1e-15 or h.slots["p"].end_s <= copy.start_s + 1e-15
    bad = dataclasses.replace(s, slots={**s.slots, "p": dataclasses.replace(s.slots["p"], start_s=0.0, end_s=MS)})
    with pytest.raises(ScheduleError, match=r"memory 'dram' bandwidth exceeded at t=0.0 s: .* draw 1.2e\+09"):
        check_schedule(p, bad)


# -- integer demands, shared memories, unchanged models -----------------------------------------

def test_demands_round_up_and_capacities_down():
    p = dataclasses.replace(streaming_pair(0.6), memory_bandwidth={"dram": BW + 0.5e6})
    c = Contention.of(p, 1e6)
    assert c.capacity == {"dram": 1000}  # 1000.5 MB/s rounded down
    assert c.op("p", "a") == (("dram", 600),)
    odd = dataclasses.replace(p, costs={**p.costs, ("p", "a"): Cost(MS, 1.0, 0.6 * BW * MS + 1)})
    assert Contention.of(odd, 1e6).op("p", "a") == (("dram", 601),)  # 600.001 MB/s rounded up
    full = dataclasses.replace(p, costs={**p.costs, ("p", "a"): Cost(MS, 1.0, 5 * BW * MS)})
    assert Contention.of(full, 1e6).op("p", "a") == (("dram", 1000),)  # capped at the bandwidth



def test_a_slow_memory_keeps_its_limit_in_cpsat():
    """Below 1 MB/s the 1 MB/s step would round the capacity to 0 and lift the limit: the step
    shrinks by tens until the memory spans at least 1000 steps (0.5 MB/s: 5000 steps of 100 B/s), and
    the 0.6 pair is still serialized."""
    slow = 0.5e6
    p = streaming_pair(0.6)
    p = dataclasses.replace(p, memory_bandwidth={"dram": slow},
                            costs={k: Cost(MS, 1.0, 0.6 * slow * MS) for k in p.costs})
    c = Contention.of(p, 1e6)
    assert (c.unit, c.capacity, c.op("p", "a")) == (100.0, {"dram": 5000}, (("dram", 3000),))
    s = solve_cpsat(p, SolveOptions(time_limit_s=5.0))
    check_schedule(p, s)
    assert s.makespan_s == pytest.approx(2 * MS)

def _cumulatives(p: MappingProblem) -> int:
    model = CpsatModel(p, TimeScale.for_problem(p))
    return sum(c.has_cumulative() for c in model.m.Proto().constraints)


def test_cumulative_only_where_users_can_overdraw():
    no_limit = streaming_pair(0.6, bandwidth=False)
    base = _cumulatives(no_limit)  # (memory capacity has its own)
    assert _cumulatives(streaming_pair(0.6)) == base + 1
    assert _cumulatives(streaming_pair(0.5)) == base  # 0.5 + 0.5: never over, nothing added
    assert shared_memories(streaming_pair(0.5)) == ()
    a = str(CpsatModel(streaming_pair(0.5), TimeScale(1e-9)).m.Proto())
    b = str(CpsatModel(no_limit, TimeScale(1e-9)).m.Proto())
    assert a == b  # the model of a memory nobody can overdraw is the model without a limit


def test_profile_places_at_the_first_gap_that_fits():
    c = Contention.of(streaming_pair(0.6))
    prof = Profile(c)
    prof.add(0.0, 1.0, (("dram", 600_000_000),))
    prof.add(2.0, 1.0, (("dram", 300_000_000),))
    assert prof.earliest(0.0, 1.0, (("dram", 500_000_000),)) == 1.0
    assert prof.earliest(0.0, 1.5, (("dram", 500_000_000),)) == 1.0  # beside the 0.3 at [2, 3]
    assert prof.earliest(0.0, 1.5, (("dram", 800_000_000),)) == 3.0
    prof.remove(2.0, 1.0, (("dram", 300_000_000),))
    assert prof.earliest(0.0, 1.5, (("dram", 800_000_000),)) == 1.0


# -- brute force --------------------------------------------------------------------------------

FRACTIONS = (0.22, 0.31, 0.43, 0.58, 0.67)  # no sum of them is within 1% of 1.0: rounding never decides


def random_streaming(seed: int) -> MappingProblem:
    """4-5 ops (random DAG) on devices a and b both computing from `dram`; each op on a, b or
    either, 1-3 ms, drawing one of FRACTIONS x BW (the same on either device)."""
    r = random.Random(seed)
    n = r.randint(4, 5)
    tensors = {"x": Tensor("x", 100, "input")}
    ops, costs = [], {}
    for i in range(n):
        srcs = ["x"] if i == 0 or r.random() < 0.4 else r.sample([f"t{j}" for j in range(i)], 1)
        out = f"t{i}"
        tensors[out] = Tensor(out, 100, "output")
        ops.append(OpNode(f"o{i}", "k", tuple(srcs), (out,)))
        frac, ms = r.choice(FRACTIONS), r.randint(1, 3)
        for d in {"a": ("a",), "b": ("b",), "ab": ("a", "b")}[r.choice(("a", "b", "ab", "ab"))]:
            costs[(f"o{i}", d)] = Cost(ms * MS, 1.0, frac * BW * ms * MS)
    return MappingProblem(tuple(ops), tensors, ("a", "b"), {"a": "dram", "b": "dram"}, {"dram": 10**6}, costs,
                          offchip_memories=frozenset({"dram"}), memory_bandwidth={"dram": BW})


def brute_force_makespan(p: MappingProblem) -> float:
    """Every device assignment x every topological order, each op at the earliest time its
    predecessors, its device (gaps included) and the bandwidth allow: the serial schedule
    generation scheme, whose schedules include an optimal one."""
    rate = {k: c.offchip_bytes / c.latency_s for k, c in p.costs.items()}
    best = float("inf")
    orders = list(nx.all_topological_sorts(p.graph))
    for devs in itertools.product(*[p.capable_devices(o.name) for o in p.ops]):
        dev = {o.name: d for o, d in zip(p.ops, devs)}
        for order in orders:
            placed: list[tuple[float, float, str, float]] = []  # start, end, device, draw
            end: dict[str, float] = {}
            for o in order:
                d, lat, r = dev[o], p.costs[(o, dev[o])].latency_s, rate[(o, dev[o])]
                ready = max((end[u] for u in p.graph.predecessors(o)), default=0.0)
                for t in sorted({ready, *(e for _, e, _, _ in placed if e > ready)}):
                    clash = [(a, e, dd, rr) for a, e, dd, rr in placed if a < t + lat - 1e-12 and t < e - 1e-12]
                    points = [t] + [a for a, _, _, _ in clash if a > t]
                    if not any(dd == d for _, _, dd, _ in clash) and all(
                            r + sum(rr for a, e, _, rr in clash if a <= x + 1e-12 and x < e - 1e-12) <= BW * (1 + 1e-9)
                            for x in points):
                        break
                placed.append((t, t + lat, d, r))
                end[o] = t + lat
            best = min(best, max(end.values()))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_cpsat_equals_brute_force_with_bandwidth(seed):
    p = random_streaming(seed)
    expected = brute_force_makespan(p)
    s = solve_cpsat(p, SolveOptions(time_limit_s=5.0), warm=[(x.op, x.device) for x in list_schedule(p).ops_in_order()])
    check_schedule(p, s)
    assert s.status == "OPTIMAL"
    assert s.makespan_s == pytest.approx(expected, rel=1e-9)
    h = baseline(p, "heft")
    check_schedule(p, h)
    assert h.makespan_s >= expected * (1 - 1e-9)


def test_brute_force_sees_the_limit():
    """The enumeration is not trivially serial: without the limit it finds the overlap."""
    p = streaming_pair(0.6)
    assert brute_force_makespan(p) == pytest.approx(2 * MS)
    assert brute_force_makespan(streaming_pair(0.4)) == pytest.approx(MS)


# -- determinism --------------------------------------------------------------------------------

def test_same_problem_twice_gives_byte_identical_schedules():
    p = random_streaming(3)
    a = json.dumps(map_problem(p, MapOptions(time_limit_s=2.0)).to_json())
    b = json.dumps(map_problem(p, MapOptions(time_limit_s=2.0)).to_json())
    assert a == b
    assert json.dumps(baseline(p, "heft").to_json()) == json.dumps(baseline(p, "heft").to_json())


# -- stitching ----------------------------------------------------------------------------------

def streaming_blocks(count: int) -> MappingProblem:
    """Block k: p_k(x, w_k) -> u_k on device a, then q_k(h_{k-1}, u_k) -> h_k on device b; each op
    1 ms drawing 0.6 x BW from the shared dram. Only q_k waits for the previous block, so p_{k+1}
    could run beside q_k -- if the bandwidth allowed it. It does not: every op runs alone, 2k ms."""
    tensors = {"x": Tensor("x", 100, "input"), "h-1": Tensor("h-1", 100, "input")}
    ops, costs = [], {}
    nbytes = 0.6 * BW * MS
    for k in range(count):
        tensors[f"w{k}"] = Tensor(f"w{k}", 1000, "weight")
        tensors[f"u{k}"] = Tensor(f"u{k}", 100, "activation")
        tensors[f"h{k}"] = Tensor(f"h{k}", 100, "output" if k == count - 1 else "activation")
        ops += [OpNode(f"p{k}", "k", ("x", f"w{k}"), (f"u{k}",)), OpNode(f"q{k}", "k", (f"h{k - 1}", f"u{k}"), (f"h{k}",))]
        costs[(f"p{k}", "a")] = Cost(MS, 1.0, nbytes)
        costs[(f"q{k}", "b")] = Cost(MS, 1.0, nbytes)
    return MappingProblem(tuple(ops), tensors, ("a", "b"), {"a": "dram", "b": "dram"}, {"dram": 10**6}, costs,
                          offchip_memories=frozenset({"dram"}), memory_bandwidth={"dram": BW},
                          home={t: "dram" for t, x in tensors.items() if x.kind in ("input", "weight")})


def _stitch(p: MappingProblem, count: int):
    heur = baseline(p, "heft")
    names = ["p0", "q0"]
    sub = block_problem(p, names, heur)
    block = solve_cpsat(sub, SolveOptions(time_limit_s=2.0))
    stitcher = Stitcher(p)
    offsets = [stitcher.add(Piece(sub, block, {"p0": f"p{k}", "q0": f"q{k}"},
                                  {"x": "x", "w0": f"w{k}", "u0": f"u{k}", "h-1": f"h{k - 1}", "h0": f"h{k}"}))
               for k in range(count)]
    return block, offsets, stitcher.schedule("stitched")


def test_stitched_blocks_respect_the_bandwidth():
    p = streaming_blocks(3)
    block, offsets, s = _stitch(p, 3)
    assert block.makespan_s == pytest.approx(2 * MS)
    # p_{k+1} would fit device a at offset 1 ms beside q_k; the bandwidth moves it to 2 ms.
    assert offsets == [0.0, pytest.approx(2 * MS), pytest.approx(4 * MS)]
    check_schedule(p, s)
    assert s.makespan_s == pytest.approx(6 * MS)


def test_stitcher_ignoring_bandwidth_is_rejected_and_the_mapper_replays(monkeypatch):
    p = streaming_blocks(4)
    monkeypatch.setattr(Stitcher, "_drawn", lambda self, piece: [])  # a stitcher blind to bandwidth
    _, offsets, s = _stitch(p, 3)
    assert offsets[1] == pytest.approx(MS)  # p1 beside q0: 1.2 x BW
    with pytest.raises(ScheduleError, match="memory 'dram' bandwidth exceeded"):
        check_schedule(p, s)
    mapped = map_problem(p, MapOptions(time_limit_s=1.0, max_whole_ops=4))
    check_schedule(p, mapped)
    assert "not stitched: the checker rejects it: memory 'dram' bandwidth exceeded" in mapped.note
    assert mapped.makespan_s == pytest.approx(8 * MS)


def test_a_piece_that_overdraws_by_itself_is_refused():
    p = streaming_blocks(2)
    free = dataclasses.replace(p, memory_bandwidth={})
    sub = block_problem(free, ["p0", "q0"], baseline(free, "heft"))
    overlapping = baseline(sub, "heft")  # p0 and q0 cannot overlap (q0 reads u0), so force it
    slots = dict(overlapping.slots)
    slots["q0"] = dataclasses.replace(slots["q0"], start_s=0.0, end_s=MS)
    piece = Piece(sub, dataclasses.replace(overlapping, slots=slots), {"p0": "p0", "q0": "q0"},
                  {t: t for t in sub.tensors})
    with pytest.raises(ScheduleError, match="draws 1.2e\\+09 bytes/s at 0.0 s by itself"):
        Stitcher(p).add(piece)


def test_objectives_other_than_makespan_still_fit_the_bandwidth():
    p = random_streaming(2)
    for kind in ("energy", "offchip"):
        s = map_problem(p, MapOptions(objective=Objective(kind), time_limit_s=2.0))
        check_schedule(p, s)

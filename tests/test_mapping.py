"""Mapping stage: problem validation, list scheduler, checker, schedule serialisation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from pimc.errors import ScheduleError
from pimc.mapping import (
    Cost, LinkCost, MappingProblem, OpNode, OpSlot, Residency, Schedule, Tensor, Transfer, check_schedule,
    list_schedule,
)


def T(name, size, kind="activation"):
    return Tensor(name, size, kind)


def diamond(capacity=10_000) -> MappingProblem:
    """a -> (b, c) -> d on one CPU; latencies 1, 2, 3, 4 s."""
    tensors = [T("x", 100, "input"), T("w", 400, "weight"), T("t1", 100), T("t2", 100),
               T("t3", 100), T("y", 100, "output")]
    ops = (OpNode("a", "matmul", ("x", "w"), ("t1",)), OpNode("b", "relu", ("t1",), ("t2",)),
           OpNode("c", "gelu", ("t1",), ("t3",)), OpNode("d", "add", ("t2", "t3"), ("y",)))
    lat = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    return MappingProblem(
        ops=ops, tensors={t.name: t for t in tensors}, devices=("cpu",),
        memory_of={"cpu": "dram"}, capacity_bytes={"dram": capacity},
        costs={(o, "cpu"): Cost(l, 0.5 * l, 10.0) for o, l in lat.items()})


def two_device() -> MappingProblem:
    """Diamond on cpu (dram) + npu (sram); links both ways at 100 B/s, 0.5 s latency, 1e-3 J/B."""
    tensors = [T("x", 10, "input"), T("t1", 100), T("t2", 50), T("t3", 50), T("y", 10, "output")]
    ops = (OpNode("a", "embed", ("x",), ("t1",)), OpNode("b", "matmul", ("t1",), ("t2",)),
           OpNode("c", "norm", ("t1",), ("t3",)), OpNode("d", "add", ("t2", "t3"), ("y",)))
    costs = {("a", "cpu"): Cost(1.0, 1.0, 0.0),
             ("b", "cpu"): Cost(4.0, 4.0, 0.0), ("b", "npu"): Cost(1.0, 0.25, 0.0),
             ("c", "cpu"): Cost(2.0, 2.0, 0.0), ("c", "npu"): Cost(2.0, 0.5, 0.0),
             ("d", "cpu"): Cost(1.0, 1.0, 0.0)}
    link = LinkCost(bandwidth_bytes_per_s=100.0, latency_s=0.5, energy_j_per_byte=1e-3)
    return MappingProblem(
        ops=ops, tensors={t.name: t for t in tensors}, devices=("cpu", "npu"),
        memory_of={"cpu": "dram", "npu": "sram"}, capacity_bytes={"dram": 1000, "sram": 1000},
        costs=costs, links={("dram", "sram"): link, ("sram", "dram"): link},
        offchip_memories=frozenset({"dram"}))


# -- problem validation -------------------------------------------------------------------------

def test_problem_rejects_unknown_tensor():
    p = diamond()
    with pytest.raises(ValueError, match="unknown tensor 'zz'"):
        dataclasses.replace(p, ops=p.ops + (OpNode("e", "add", ("zz",), ()),))


def test_problem_rejects_non_topological_order():
    p = diamond()
    with pytest.raises(ValueError, match="topological"):
        dataclasses.replace(p, ops=(p.ops[1], p.ops[0], p.ops[2], p.ops[3]))


def test_problem_rejects_op_no_device_can_run():
    p = diamond()
    costs = {k: c for k, c in p.costs.items() if k[0] != "c"}
    with pytest.raises(ValueError, match="no device can run op 'c'"):
        dataclasses.replace(p, costs=costs)


def test_problem_graph_and_maps():
    p = diamond()
    assert sorted(p.graph.edges) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert p.producer["t1"] == "a" and "w" not in p.producer
    assert p.consumers["t1"] == ("b", "c")
    assert p.graph is p.graph  # cached


# -- list scheduler -----------------------------------------------------------------------------

def test_diamond_one_device():
    p = diamond()
    s = list_schedule(p)
    check_schedule(p, s)
    assert s.makespan_s == 1.0 + 2.0 + 3.0 + 4.0
    assert s.objective == s.makespan_s and s.solver == "list" and s.status == "heuristic"
    assert s.bound is None and s.gap is None
    assert s.energy_j(p) == pytest.approx(5.0)
    assert s.offchip_bytes(p) == 40.0
    assert s.busy_s == {"cpu": 10.0}
    assert s.transfers == ()
    # c has the larger upward rank (3+4 > 2+4), so it runs before b.
    assert [x.op for x in s.ops_in_order()] == ["a", "c", "b", "d"]
    w = next(r for r in s.residency if r.tensor == "w")
    assert (w.start_s, w.end_s) == (0.0, 10.0)  # weights stay for the whole schedule


def test_two_devices_with_transfers():
    p = two_device()
    s = list_schedule(p)
    check_schedule(p, s)
    # Ranks (mean transfer of 100 B = 1.5 s, of 50 B = 1.0 s): d=1, b=2.5+1+1=4.5, c=2+1+1=4,
    # a=1+max(1.5+4.5, 1.5+4)=7  ->  order a, b, c, d.
    # a: cpu [0, 1].
    # b: cpu would finish 1+4=5; npu needs t1 dram->sram [1, 1+100/100+0.5=2.5], finishes 3.5.
    # c: cpu [1, 3] (finish 3) beats npu (free at 3.5, finish 5.5).
    # d: cpu-only; t2 sram->dram [3.5, 3.5+50/100+0.5=4.5]; t3 ready at 3 -> d [4.5, 5.5].
    got = {n: (x.device, x.start_s, x.end_s) for n, x in s.slots.items()}
    assert got == {"a": ("cpu", 0.0, 1.0), "b": ("npu", 2.5, 3.5),
                   "c": ("cpu", 1.0, 3.0), "d": ("cpu", 4.5, 5.5)}
    assert s.makespan_s == 5.5
    tr = [(t.tensor, t.src_memory, t.dst_memory, t.start_s, t.end_s, t.bytes) for t in s.transfers]
    assert tr == [("t1", "dram", "sram", 1.0, 2.5, 100), ("t2", "sram", "dram", 3.5, 4.5, 50)]
    # ops 1 + 0.25 + 2 + 1 = 4.25 J, transfers 150 B * 1e-3 J/B = 0.15 J
    assert s.energy_j(p) == pytest.approx(4.4)
    assert s.offchip_bytes(p) == 150  # both transfers touch dram
    assert s.busy_s == {"cpu": 4.0, "npu": 1.0}
    t1 = {r.memory: (r.start_s, r.end_s) for r in s.residency if r.tensor == "t1"}
    assert t1 == {"dram": (0.0, 3.0), "sram": (1.0, 3.5)}


def test_capacity_exceeded_raises_naming_memory():
    # At t=4 (b starts as c ends): w 400 + t1 100 (until b ends) + t3 100 + t2 100 = 700 > 650.
    with pytest.raises(ScheduleError, match=r"memory 'dram'.*peak live 700 bytes.*capacity 650"):
        list_schedule(diamond(capacity=650))


def test_first_fit_reuses_addresses():
    s = list_schedule(diamond(capacity=800))  # peak 700 at t=4 (see test above)
    check_schedule(diamond(capacity=800), s)
    assert max(r.offset_bytes for r in s.residency) + 100 <= 800


def test_determinism_and_json_round_trip():
    p = two_device()
    a = json.dumps(list_schedule(p).to_json())
    b = json.dumps(list_schedule(p).to_json())
    assert a == b
    s = list_schedule(p)
    back = Schedule.from_json(json.loads(a))
    assert back == s
    assert json.dumps(back.to_json()) == a
    assert list(json.loads(a)) == ["schema", "solver", "status", "objective", "bound", "gap",
                                   "objective_kind", "note", "makespan_s", "slots", "residency", "transfers"]


# -- checker rejects corrupted schedules --------------------------------------------------------

def _with_slot(s: Schedule, op: str, start: float, end: float) -> Schedule:
    slots = dict(s.slots)
    slots[op] = dataclasses.replace(slots[op], start_s=start, end_s=end)
    return dataclasses.replace(s, slots=slots)


@pytest.fixture
def good():
    p = diamond()
    s = list_schedule(p)
    check_schedule(p, s)
    return p, s  # a [0,1], c [1,4], b [4,6], d [6,10]


def test_checker_consumer_before_producer(good):
    p, s = good
    with pytest.raises(ScheduleError, match="'d' starts at 5.0 before producer 'b'"):
        check_schedule(p, _with_slot(s, "d", 5.0, 9.0))


def test_checker_overlapping_ops(good):
    p, s = good
    with pytest.raises(ScheduleError, match="'c' and 'b' overlap on device 'cpu'"):
        check_schedule(p, _with_slot(s, "b", 3.0, 5.0))


def test_checker_wrong_duration(good):
    p, s = good
    with pytest.raises(ScheduleError, match="'d' lasts 5.0 s on 'cpu', cost table says 4.0"):
        check_schedule(p, _with_slot(s, "d", 6.0, 11.0))


def test_checker_missing_op(good):
    p, s = good
    slots = {k: v for k, v in s.slots.items() if k != "b"}
    with pytest.raises(ScheduleError, match="op 'b' missing"):
        check_schedule(p, dataclasses.replace(s, slots=slots))


def test_checker_overlapping_addresses(good):
    p, s = good
    res = tuple(dataclasses.replace(r, offset_bytes=0) for r in s.residency)
    with pytest.raises(ScheduleError, match="overlap in 'dram' at addresses"):
        check_schedule(p, dataclasses.replace(s, residency=res))


def test_checker_capacity_exceeded(good):
    p, s = good
    small = dataclasses.replace(p, capacity_bytes={"dram": 650})
    with pytest.raises(ScheduleError, match="memory 'dram' holds 700 bytes at t=4.0 s, capacity 650"):
        check_schedule(small, s)


def test_checker_missing_residency(good):
    p, s = good
    res = tuple(r for r in s.residency if r.tensor != "t1")
    with pytest.raises(ScheduleError, match="tensor 't1' not resident in 'dram' during op 'a'"):
        check_schedule(p, dataclasses.replace(s, residency=res))


def test_checker_missing_or_short_transfer():
    p = two_device()
    s = list_schedule(p)
    with pytest.raises(ScheduleError, match="needs a transfer 'dram'->'sram'"):
        check_schedule(p, dataclasses.replace(s, transfers=s.transfers[1:]))
    short = (dataclasses.replace(s.transfers[0], end_s=2.0),) + s.transfers[1:]
    with pytest.raises(ScheduleError, match="lasts 1.0 s, link needs 1.5 s"):
        check_schedule(p, dataclasses.replace(s, transfers=short))


def test_checker_message_is_one_line_with_count(good):
    p, s = good
    bad = dataclasses.replace(s, slots={}, residency=(Residency("w", "dram", 0.0, 1.0, 10_000),))
    with pytest.raises(ScheduleError) as e:
        check_schedule(p, bad)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("invalid schedule (6 violations)")  # 4 missing ops, w out of range, output y not kept


def _random_problem(seed: int, n: int = 40) -> MappingProblem:
    """Random DAG on 4 devices / 3 memories (two devices share dram), weights, in-place state."""
    import random
    r = random.Random(seed)
    tensors = {f"in{i}": T(f"in{i}", r.randint(1, 50), "input") for i in range(3)}
    tensors["kv"] = T("kv", 30, "state")
    acts, ops, costs = list(tensors)[:3], [], {}
    devs = ("cpu", "npu", "pud", "cim")
    for i in range(n):
        tensors[f"w{i}"] = T(f"w{i}", r.randint(1, 40), "weight")
        tensors[f"t{i}"] = T(f"t{i}", r.randint(0, 60), "output" if i == n - 1 else "activation")
        ins = tuple(r.sample(acts, min(len(acts), r.randint(1, 3)))) + (f"w{i}",)
        outs = (f"t{i}",)
        if i == n // 2:
            ins, outs = ins + ("kv",), outs + ("kv",)
        ops.append(OpNode(f"op{i}", "k", ins, outs))
        acts.append(f"t{i}")
        for d in devs:
            if d == "cpu" or r.random() < 0.5:
                costs[(f"op{i}", d)] = Cost(r.choice([0.0, r.random()]), r.random(), 1.0)
    mems = ("dram", "sram", "xbar")
    links = {(a, b): LinkCost(r.uniform(50, 500), r.uniform(0, 0.1), 1e-3)
             for a in mems for b in mems if a != b and (a, b) != ("sram", "xbar")}
    return MappingProblem(tuple(ops), tensors, devs,
                          {"cpu": "dram", "pud": "dram", "npu": "sram", "cim": "xbar"},
                          {m: 10**6 for m in mems}, costs, links, frozenset({"dram"}))


@pytest.mark.parametrize("seed", range(10))
def test_random_problems_pass_checker(seed):
    p = _random_problem(seed)
    s = list_schedule(p)
    check_schedule(p, s)
    assert Schedule.from_json(s.to_json()) == s


def _long_axis() -> MappingProblem:
    """cpu works 32.031 s, then a 1 us transfer (1000 B at 1 GB/s) feeds the npu: float rounding
    makes end - start = 9.99999997e-07 s at t = 32 s."""
    tensors = [T("x", 10, "input"), T("t1", 1000), T("y", 10, "output")]
    ops = (OpNode("a", "embed", ("x",), ("t1",)), OpNode("b", "matmul", ("t1",), ("y",)))
    costs = {("a", "cpu"): Cost(32.031, 1.0, 0.0), ("b", "npu"): Cost(1.0, 1.0, 0.0)}
    link = LinkCost(bandwidth_bytes_per_s=1e9, latency_s=0.0, energy_j_per_byte=0.0)
    return MappingProblem(
        ops=ops, tensors={t.name: t for t in tensors}, devices=("cpu", "npu"),
        memory_of={"cpu": "dram", "npu": "sram"}, capacity_bytes={"dram": 10_000, "sram": 10_000},
        costs=costs, links={("dram", "sram"): link, ("sram", "dram"): link},
        offchip_memories=frozenset({"dram"}))


def test_checker_accepts_rounded_transfer_on_long_time_axis():
    p = _long_axis()
    tr = Transfer("t1", "dram", "sram", 32.031, 32.031 + 1e-6, 1000)
    assert tr.end_s - tr.start_s < 1e-6  # the rounding the old duration-sized tolerance rejected
    slots = {"a": OpSlot("a", "cpu", 0.0, 32.031), "b": OpSlot("b", "npu", tr.end_s, tr.end_s + 1.0)}
    res = (Residency("x", "dram", 0.0, 32.031, 1000, 10), Residency("t1", "dram", 0.0, tr.end_s, 0, 1000),
           Residency("t1", "sram", 32.031, tr.end_s + 1.0, 0, 1000),
           Residency("y", "sram", tr.end_s, tr.end_s + 1.0, 1000, 10))
    s = Schedule(slots=slots, residency=res, transfers=(tr,), solver="hand", status="FEASIBLE",
                 objective=tr.end_s + 1.0, bound=None, gap=None)
    check_schedule(p, s)
    # Short by 1 ns (far above noise, far below the 32 ns relative margin of t = 32 s): rejected.
    short = dataclasses.replace(tr, end_s=tr.end_s - 1e-9)
    with pytest.raises(ScheduleError, match="link needs 1e-06 s"):
        check_schedule(p, dataclasses.replace(s, transfers=(short,)))


def _long_axis_schedule(b_latency: float) -> tuple[MappingProblem, Schedule]:
    """_long_axis with op b costing `b_latency` s, run back to back at t = 32.031 s."""
    p = _long_axis()
    p = dataclasses.replace(p, costs={**p.costs, ("b", "npu"): Cost(b_latency, 1.0, 0.0)})
    tr = Transfer("t1", "dram", "sram", 32.031, 32.031 + 1e-6, 1000)
    slots = {"a": OpSlot("a", "cpu", 0.0, 32.031), "b": OpSlot("b", "npu", tr.end_s, tr.end_s + b_latency)}
    res = (Residency("x", "dram", 0.0, 32.031, 1000, 10), Residency("t1", "dram", 0.0, tr.end_s, 0, 1000),
           Residency("t1", "sram", 32.031, tr.end_s + b_latency, 0, 1000),
           Residency("y", "sram", tr.end_s, tr.end_s + b_latency, 1000, 10))
    return p, Schedule(slots=slots, residency=res, transfers=(tr,), solver="hand", status="FEASIBLE",
                       objective=tr.end_s + b_latency, bound=None, gap=None)


def test_checker_rejects_a_short_op_on_a_long_time_axis():
    # A 10 ns op at t = 32 s: the old margin (relative to the end time) was 32 ns, so an op shrunk to
    # 0 s passed; the duration margin is the op's own relative tolerance plus a few ulps of its times.
    p, s = _long_axis_schedule(10e-9)
    check_schedule(p, s)
    b = s.slots["b"]
    shrunk = dataclasses.replace(b, end_s=b.start_s)
    with pytest.raises(ScheduleError, match="op 'b' lasts 0.0 s"):
        check_schedule(p, dataclasses.replace(s, slots={**s.slots, "b": shrunk}))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_checker_rejects_times_that_are_not_finite(bad):
    p, s = _long_axis_schedule(1.0)
    tr = dataclasses.replace(s.transfers[0], end_s=bad)
    with pytest.raises(ScheduleError, match="transfer of 't1' .* a time is not finite"):
        check_schedule(p, dataclasses.replace(s, transfers=(tr,)))

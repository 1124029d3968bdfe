"""The makespan lower bound counts the loads every schedule makes on a scratchpad target: a weight
or input homed in DRAM crosses a link before its first reader (per-op earliest start), and those
first crossings share the links out of DRAM (per-link busy time). Hand-computed values, and never
above a schedule the checker accepts."""

from __future__ import annotations

import pytest

from pimc.mapping import Cost, LinkCost, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule
from pimc.mapping.bounds import lower_bound
from pimc.mapping.cpsat_solve import SolveOptions, solve_cpsat
from pimc.mapping.list_scheduler import heft_placement

from test_cpsat_hint import two_cores

KB = 1000


def weight_stream() -> MappingProblem:
    """x (1 kB) -> o0 -> o1 -> o2 -> o3 -> y on one core computing from a scratchpad; each op reads
    its own 2 kB weight from DRAM over one 1 kB/s DMA link and takes 1 s."""
    tensors = {"x": Tensor("x", KB, "input"), "y": Tensor("y", 1, "output")}
    ops, prev = [], "x"
    for i in range(4):
        tensors[f"w{i}"] = Tensor(f"w{i}", 2 * KB, "weight")
        out = "y" if i == 3 else f"h{i}"
        if out != "y":
            tensors[out] = Tensor(out, KB, "activation")
        ops.append(OpNode(f"o{i}", "k", (prev, f"w{i}"), (out,)))
        prev = out
    dma = LinkCost(1000.0, 0.0, 0.0)
    return MappingProblem(tuple(ops), tensors, ("core",), {"core": "spm"}, {"spm": 10 * KB, "dram": 10**6},
                          {(op.name, "core"): Cost(1.0, 1.0, 0.0) for op in ops},
                          {("dram", "spm"): dma, ("spm", "dram"): dma}, frozenset({"dram"}),
                          home={t: "dram" for t, v in tensors.items() if v.kind in ("input", "weight")},
                          spill_to={"spm": "dram"})


def test_link_busy_time_bounds_a_weight_streaming_chain():
    """x and four weights must each cross the one link: 1 + 4 x 2 = 9 s of link time, then a reader
    of the last one runs 1 s: 10 s (the chain alone: 4 s). The best schedule loads back to back and
    ends with o3 at 10 s plus y's 1-byte writeback (1 ms)."""
    p = weight_stream()
    assert lower_bound(p, Objective()) == pytest.approx(10.0)
    s = baseline(p, "heft")
    check_schedule(p, s)
    assert s.makespan_s == pytest.approx(10.001)


def test_loads_delay_each_op_on_two_cores():
    """two_cores: a waits 1 s for x and its weight, then a, b (or c) and d run 2 s each: 7 s (the
    chain alone: 6 s; 5 loads over 2 links + 2 s: 4.5 s; work over 2 cores: 4 s)."""
    p = two_cores()
    bound = lower_bound(p, Objective())
    assert bound == pytest.approx(7.0)
    for s in (baseline(p, "heft"), baseline(p, "topo-lru"),
              solve_cpsat(p, SolveOptions(time_limit_s=1.0, time_unit_s=1.0), warm=heft_placement(p))):
        check_schedule(p, s)
        assert s.makespan_s >= bound

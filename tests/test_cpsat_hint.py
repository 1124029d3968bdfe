"""CP-SAT's warm start is a feasible assignment of the model: with the hinted variables fixed,
CP-SAT accepts it at exactly the heuristic's objective (computed by the eviction simulator, not by
the model). So on scratchpad targets, where the heuristic reloads a
tensor more often than `max_reloads` and identical cores make the model symmetric, CP-SAT returns
at least the heuristic's schedule instead of UNKNOWN."""

from __future__ import annotations

from ortools.sat.python import cp_model

from pimc.mapping import Cost, LinkCost, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule
from pimc.mapping.cpsat_hint import reload_counts, unit_schedule
from pimc.mapping.cpsat_solve import SolveOptions, build_model, solve_cpsat
from pimc.mapping.cpsat_time import TimeScale
from pimc.mapping.list_scheduler import heft_placement

from test_evict import random_dag


def two_cores() -> MappingProblem:
    """Two identical cores, each computing from its own 4 kB scratchpad, DMA from one DRAM; a
    diamond of ops each reading a 1 kB weight homed in DRAM (integer times: 1 s per kB on a link)."""
    kb = 1000
    tensors = {"x": Tensor("x", kb, "input"), "y": Tensor("y", kb, "output")}
    ops = []
    for name, ins, out in (("a", ("x",), "h"), ("b", ("h",), "p"), ("c", ("h",), "q"), ("d", ("p", "q"), "y")):
        tensors[f"w{name}"] = Tensor(f"w{name}", kb, "weight")
        if out != "y":
            tensors[out] = Tensor(out, kb, "activation")
        ops.append(OpNode(name, "k", (*ins, f"w{name}"), (out,)))
    dma, noc = LinkCost(1000.0, 0.0, 0.0), LinkCost(1000.0, 0.0, 0.0)
    links = {("dram", "spm0"): dma, ("spm0", "dram"): dma, ("dram", "spm1"): dma, ("spm1", "dram"): dma,
             ("spm0", "spm1"): noc, ("spm1", "spm0"): noc}
    costs = {(op.name, core): Cost(2.0, 1.0, 0.0) for op in ops for core in ("core0", "core1")}
    return MappingProblem(tuple(ops), tensors, ("core0", "core1"), {"core0": "spm0", "core1": "spm1"},
                          {"spm0": 4 * kb, "spm1": 4 * kb, "dram": 10**6}, costs, links, frozenset({"dram"}),
                          home={t: "dram" for t, v in tensors.items() if v.kind in ("input", "weight")},
                          spill_to={"spm0": "dram", "spm1": "dram"})


def fixed_hint_solve(problem: MappingProblem, options: SolveOptions, warm):
    """The model with every hinted variable fixed: (status, objective, the unit-timed warm start)."""
    model, _, hint = build_model(problem, options, warm)
    assert hint is not None and len(model.m.proto.solution_hint.vars) > 0
    solver = cp_model.CpSolver()
    solver.parameters.fix_variables_to_their_hinted_value = True
    solver.parameters.num_workers = 1
    status = solver.solve(model.m)
    return solver.status_name(status), solver.objective_value, hint


def test_fixed_hint_is_the_heuristics_offchip_schedule_on_a_tight_scratchpad():
    """random_dag(0) at its largest op's budget: HEFT + Belady loads x six times and weights
    twice (more than max_reloads = 1); the model gets the segments for it."""
    p = random_dag(0)
    warm = heft_placement(p)
    heuristic = baseline(p, "heft").offchip_bytes(p)
    scale = TimeScale.for_problem(p)
    assert max(reload_counts(p, unit_schedule(p, scale, warm, "belady")).values()) > 1
    status, objective, _ = fixed_hint_solve(p, SolveOptions(objective=Objective("offchip")), warm)
    assert status == "OPTIMAL" and objective == heuristic == 8448


def test_fixed_hint_is_the_heuristics_makespan_on_two_identical_cores():
    p = two_cores()
    warm = heft_placement(p)
    options = SolveOptions(time_unit_s=1.0)
    status, objective, hint = fixed_hint_solve(p, options, warm)
    heuristic = baseline(p, "heft")
    check_schedule(p, heuristic)
    assert status == "OPTIMAL" and objective == hint.makespan_s == heuristic.makespan_s


def test_a_short_solve_returns_at_least_the_warm_start():
    """With a hint that survives presolve (identical cores are symmetric), even a tiny
    deterministic limit yields a schedule no worse than the heuristic's (before: UNKNOWN, both)."""
    p = two_cores()
    s = solve_cpsat(p, SolveOptions(time_limit_s=0.001, time_unit_s=1.0), warm=heft_placement(p))
    check_schedule(p, s)
    assert s.status in ("FEASIBLE", "OPTIMAL") and s.makespan_s <= baseline(p, "heft").makespan_s
    q = random_dag(0)
    s = solve_cpsat(q, SolveOptions(objective=Objective("offchip"), time_limit_s=0.01), warm=heft_placement(q))
    check_schedule(q, s)
    assert s.status in ("FEASIBLE", "OPTIMAL") and s.objective <= 8448

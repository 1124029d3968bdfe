"""device_bound: the work of ops only some devices can run, and chains of groups of ops only one
device can run with the least path of ops between groups (a decoder layer's projections on the
only device that has them, the attention and norms between). Hand-computed values, never above the
brute-force optimum on small random problems, never above a checker-accepted schedule."""

from __future__ import annotations

import random

import pytest

from pimc.errors import ScheduleError
from pimc.mapping import Cost, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule
from pimc.mapping.bounds import lower_bound
from pimc.mapping.device_bound import chain_bound, restricted_work_bound
from pimc.mapping.list_scheduler import list_schedule
from pimc.mapping.mapper import MapOptions, map_problem

from test_bandwidth import brute_force_makespan
from test_mapping import _random_problem


def _problem(ops: list[tuple[str, tuple[str, ...], dict[str, float]]], devices=("a", "b")) -> MappingProblem:
    """ops: (name, inputs (op names or "x"), {device: latency}); every device computes from dram;
    each op writes its own tensor, the last one is the output."""
    tensors = {"x": Tensor("x", 10, "input")}
    nodes, costs = [], {}
    for i, (name, ins, lat) in enumerate(ops):
        tensors[name] = Tensor(name, 10, "output" if i == len(ops) - 1 else "activation")
        nodes.append(OpNode(name, "k", ins, (name,)))
        costs.update({(name, d): Cost(t, 1.0, 0.0) for d, t in lat.items()})
    return MappingProblem(tuple(nodes), tensors, devices, {d: "dram" for d in devices}, {"dram": 10**6}, costs,
                          offchip_memories=frozenset({"dram"}))


def _parts(p: MappingProblem) -> tuple[float, float]:
    fastest = {op.name: min(p.costs[(op.name, d)].latency_s for d in p.capable_devices(op.name)) for op in p.ops}
    start: dict[str, float] = {}
    for op in p.ops:
        start[op.name] = max((start[u] + fastest[u] for u in p.graph.predecessors(op.name)), default=0.0)
    return restricted_work_bound(p, fastest), chain_bound(p, fastest, start)


def two_groups() -> MappingProblem:
    """h (b, 0.5 s) feeds p1 and p2 (a only, 2 s each); m (b, 1 s) reads both, r (a only, 2 s)
    reads m, z (b, 0.25 s) reads r. a runs {p1, p2} then {r}, with m between: 0.5 + 4 + 1 + 2 +
    0.25 = 7.75 s (a's work alone: 6 s; the critical path: 5.75 s)."""
    return _problem([("h", ("x",), {"b": 0.5}), ("p1", ("h",), {"a": 2.0}), ("p2", ("h",), {"a": 2.0}),
                     ("m", ("p1", "p2"), {"b": 1.0, "a": 3.0}), ("r", ("m",), {"a": 2.0}), ("z", ("r",), {"b": 0.25})])


def test_chain_of_groups_on_one_device_counts_the_path_between_groups():
    p = two_groups()
    work, chain = _parts(p)
    assert work == pytest.approx(6.0)
    assert chain == pytest.approx(7.75)
    assert lower_bound(p, Objective()) == pytest.approx(7.75)
    s = map_problem(p, MapOptions())
    check_schedule(p, s)
    assert s.makespan_s == pytest.approx(7.75) and s.status == "OPTIMAL"


def test_least_path_between_groups_takes_the_shorter_branch():
    """q1 -> m1 (1 s) -> o and q2 -> o directly: o may start right after q2, so no gap counts,
    and the least path is the fastest device's (m on a: 0.5 s, on b: 1 s)."""
    p = _problem([("q1", ("x",), {"a": 1.0}), ("q2", ("x",), {"a": 1.0}), ("m1", ("q1",), {"a": 0.5, "b": 1.0}),
                  ("o", ("m1", "q2"), {"a": 1.0})])
    assert _parts(p)[1] == pytest.approx(3.0)  # q1, q2, o back to back on a, m1 on b beside q2
    p = _problem([("q1", ("x",), {"a": 1.0}), ("m1", ("q1",), {"a": 0.5, "b": 1.0}), ("o", ("m1",), {"a": 1.0})])
    assert _parts(p)[1] == pytest.approx(2.5)


def test_work_of_ops_only_some_devices_can_run_is_spread_over_those():
    """Four 1 s ops only a or b can run and one any of a, b, c can: 4 / 2 = 2 s (all work over
    three devices: 5/3 s)."""
    ops = [(f"o{i}", ("x",), {"a": 1.0, "b": 1.0}) for i in range(4)] + [("y", ("x",), {"a": 1.0, "b": 1.0, "c": 1.0})]
    p = _problem(ops, devices=("a", "b", "c"))
    assert _parts(p) == (pytest.approx(2.0), 0.0)
    assert lower_bound(p, Objective()) == pytest.approx(2.0)


def random_restricted(seed: int) -> MappingProblem:
    """6 ops, each reading one or two earlier ones (or x), each only on a, only on b or on either,
    1-3 ms (the same on either)."""
    r = random.Random(seed)
    ops = []
    for i in range(6):
        srcs = tuple(r.sample([f"o{j}" for j in range(i)], min(i, r.randint(1, 2)))) if i else ("x",)
        ms = r.randint(1, 3) * 1e-3
        ops.append((f"o{i}", srcs, {d: ms for d in r.choice(("a", "b", "ab", "a", "b"))}))
    return _problem(ops)


def test_never_above_the_brute_force_optimum():
    tighter = 0
    for seed in range(30):
        p = random_restricted(seed)
        best = brute_force_makespan(p)
        bound = lower_bound(p, Objective())
        assert bound <= best * (1 + 1e-9), seed
        work, chain = _parts(p)
        tighter += chain > work * (1 + 1e-9)
    assert tighter >= 5  # the chain counts on a good share of them


@pytest.mark.parametrize("seed", range(10))
def test_never_above_a_checked_schedule_on_random_problems(seed):
    p = _random_problem(seed)
    bound = lower_bound(p, Objective())
    schedules = [list_schedule(p)]
    for name in ("heft", "topo-lru"):
        try:
            schedules.append(baseline(p, name))
        except ScheduleError:  # no link the order needs: the list schedule still counts
            pass
    for s in schedules:
        check_schedule(p, s)
        assert bound <= s.makespan_s * (1 + 1e-9)


def test_a_bound_above_a_checked_schedule_is_withdrawn_loudly():
    """A lower bound above a checker-accepted schedule is a bug in the bound: the mapper reports no
    bound and no gap, never OPTIMAL from it, and its note says so (it used to clamp the gap to 0)."""
    from pimc.mapping.mapper import _finish

    p = _random_problem(0)
    s = list_schedule(p)
    check_schedule(p, s)
    out = _finish(p, s, Objective(), "heuristic", status="OPTIMAL", bound=2 * s.makespan_s)
    assert out.bound is None and out.gap is None and out.status == "FEASIBLE"
    assert "withdrawn: above this checked schedule" in out.note
    kept = _finish(p, s, Objective(), "heuristic", bound=0.5 * s.makespan_s)
    assert kept.bound == 0.5 * s.makespan_s and kept.gap == pytest.approx(0.5) and kept.status == "FEASIBLE"

"""The eviction baselines (HEFT + Belady, topological order + LRU) at tight scratchpad budgets:
whenever each op's operands fit the scratchpad, they find a schedule the checker accepts, even when
the free bytes are fragmented; and they never beat the brute-force optimum. The byte-level traffic
bound equals the brute force on one device and lets the mapper prove its off-chip optimum."""

from __future__ import annotations

import dataclasses
import random

import pytest

from mapping_brute_force import brute_force_offchip, tiny_problem
from pimc.mapping import (
    Cost, LinkCost, MapOptions, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule, map_problem,
)
from pimc.mapping.bounds import lower_bound
from pimc.mapping.cpsat_solve import SolveOptions, solve_cpsat
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.list_scheduler import heft_placement
from pimc.mapping.traffic_bound import scratchpad_plan, scratchpad_traffic
from pimc.mapping.traffic_plan import plan_schedule


def random_dag(seed: int) -> MappingProblem:
    """8-14 ops on one accelerator, tensors of 1-6 units of 64 bytes, skip connections and a weight
    per op; the scratchpad holds exactly the largest op's inputs + outputs (COSMA's M_R)."""
    r = random.Random(seed)
    unit = 64
    tensors = {"x": Tensor("x", unit * r.randint(1, 4), "input")}
    ops, live = [], ["x"]
    n = r.randint(8, 14)
    for i in range(n):
        ins = [live[-1], *r.sample(live[:-1], min(len(live) - 1, r.randint(0, 2)))]
        w = f"w{i}"
        tensors[w] = Tensor(w, unit * r.randint(1, 6), "weight")
        out = "y" if i == n - 1 else f"t{i}"
        tensors[out] = Tensor(out, unit * r.randint(1, 6), "output" if i == n - 1 else "activation")
        ops.append(OpNode(f"o{i}", "k", (*dict.fromkeys(ins), w), (out,)))
        live.append(out)
    read = {t for op in ops for t in op.inputs}
    dead = [t for t in live[:-1] if t not in read]
    if dead:  # every activation is read by someone
        ops[-1] = OpNode(ops[-1].name, "k", (*ops[-1].inputs, *dead), ops[-1].outputs)
    budget = max(sum(tensors[t].size_bytes for t in {*op.inputs, *op.outputs}) for op in ops)
    link = LinkCost(1e9, 0.0, 0.0)
    return MappingProblem(tuple(ops), tensors, ("acc",), {"acc": "spm"}, {"spm": budget, "dram": 10**9},
                          {(op.name, "acc"): Cost(1e-6, 1e-6, 0.0) for op in ops},
                          {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                          home={t: "dram" for t, v in tensors.items() if v.kind in ("input", "weight")},
                          spill_to={"spm": "dram"})


def test_baselines_schedule_every_dag_at_the_largest_ops_budget():
    totals = {"evictions_fragmentation": 0, "repacks": 0}
    for seed in range(40):
        p = random_dag(seed)
        for policy, placement in (("lru", [(op.name, "acc") for op in p.ops]), ("belady", heft_placement(p))):
            stats: dict[str, int] = {}
            s = sequence_schedule(p, placement, policy, stats=stats)
            check_schedule(p, s)
            for k in totals:
                totals[k] += stats[k]
    # the fragmentation paths really ran: evictions with enough free bytes but no contiguous range,
    # and ops whose own inputs were spilled and reloaded packed
    assert totals["evictions_fragmentation"] > 0 and totals["repacks"] > 0


def test_fragmented_operands_are_spilled_and_repacked():
    """spm of 4 units: xa at 0, a at 1; c lands at 0 and b at 2; c dies, so o3(a, b) -> r (2 units)
    finds 2 free units (0 and 3) but not 2 contiguous: a and b are spilled and reloaded packed at
    0 and 1, r goes to 2. CP-SAT, placing addresses itself, needs no spill at all."""
    u = 100
    ts = [Tensor("xa", u, "input"), Tensor("a", u, "activation"), Tensor("c", u, "activation"),
          Tensor("b", u, "activation"), Tensor("r", 2 * u, "output")]
    ops = (OpNode("o0", "k", ("xa",), ("a",)), OpNode("o1", "k", ("a",), ("c",)),
           OpNode("o2", "k", ("c",), ("b",)), OpNode("o3", "k", ("a", "b"), ("r",)))
    link = LinkCost(100.0, 0.0, 0.0)
    p = MappingProblem(ops, {t.name: t for t in ts}, ("acc",), {"acc": "spm"}, {"spm": 4 * u, "dram": 10**6},
                       {(op.name, "acc"): Cost(1.0, 1.0, 0.0) for op in ops},
                       {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                       home={"xa": "dram"}, spill_to={"spm": "dram"})
    compulsory = 100 + 200  # xa in, r out
    stats: dict[str, int] = {}
    s = sequence_schedule(p, [(op.name, "acc") for op in ops], "belady", stats=stats)
    check_schedule(p, s)
    assert stats == {"evictions_capacity": 0, "evictions_fragmentation": 2, "bytes_capacity": 0,
                     "bytes_fragmentation": 400, "repacks": 1}
    assert s.offchip_bytes(p) == compulsory + 400  # a and b: one spill and one reload each
    during = {r.tensor: r.offset_bytes for r in s.residency
              if r.memory == "spm" and r.start_s <= s.slots["o3"].start_s < r.end_s}
    assert during == {"a": 0, "b": 100, "r": 200}
    best = solve_cpsat(p, SolveOptions(objective=Objective("offchip"), time_limit_s=5.0, time_unit_s=1.0),
                       warm=[(op.name, "acc") for op in ops])
    check_schedule(p, best)
    assert best.status == "OPTIMAL" and best.objective == compulsory


@pytest.mark.parametrize("seed", range(14))
def test_baselines_on_two_devices_never_beat_the_brute_force(seed):
    """Inputs read by the cpu in DRAM and later by the accelerator stay in DRAM for it."""
    p = tiny_problem(seed)
    best = brute_force_offchip(p)
    for name in ("heft", "topo-lru"):
        s = baseline(p, name)
        check_schedule(p, s)
        assert s.offchip_bytes(p) >= best


@pytest.mark.parametrize("seed", range(12))
def test_byte_level_traffic_bound_equals_brute_force_on_one_device(seed):
    """traffic_bound (Dijkstra over ops done x resident x written back) is the brute force's
    optimum when every op runs on the accelerator, at the largest op's budget and one unit more."""
    p = tiny_problem(seed)
    costs = {(op.name, "acc"): Cost(1.0, 1.0, 0.0) for op in p.ops}
    need = max(len({*op.inputs, *op.outputs}) for op in p.ops) * 100
    for cap in (need, need + 100):
        q = dataclasses.replace(p, devices=("acc",), costs=costs, capacity_bytes={**p.capacity_bytes, "spm": cap})
        best, order = scratchpad_plan(q)
        assert best == brute_force_offchip(q) == scratchpad_traffic(q)
        assert sorted(order) == sorted(op.name for op in q.ops)


def test_mapper_proves_the_spill_optimum_with_the_byte_bound():
    """An 11-op random DAG at its largest op's budget, where the byte-level bound is above the
    compulsory traffic: the mapper's off-chip schedule meets it, so it is reported OPTIMAL, gap 0."""
    p = random_dag(6)
    compulsory = sum(t.size_bytes for t in p.tensors.values() if t.kind in ("input", "weight", "output"))
    assert scratchpad_traffic(p) > compulsory
    s = map_problem(p, MapOptions(objective=Objective("offchip"), time_limit_s=2.0))
    check_schedule(p, s)
    assert s.bound == lower_bound(p, Objective("offchip")) >= scratchpad_traffic(p)
    assert s.status == "OPTIMAL" and s.gap == 0.0 and s.objective == s.offchip_bytes(p) == s.bound


def test_plan_schedule_is_valid_and_moves_exactly_the_bound():
    """The least-bytes plan played out with offline addresses: accepted by the checker and, when
    its addresses fit (all 20 of these tight cases; 8 by the greedy orders alone, the other 12 by
    the CP-SAT packing), exactly the byte-level bound, so optimal."""
    fits = 0
    for seed in range(10):
        p = random_dag(seed)
        for extra in (0, 64):  # M_R and one 64-byte unit more
            q = dataclasses.replace(p, capacity_bytes={**p.capacity_bytes, "spm": p.capacity_bytes["spm"] + extra})
            s = plan_schedule(q)
            if s is None:  # fragmentation: no addresses for the plan (the mapper falls back)
                continue
            check_schedule(q, s)
            assert s.offchip_bytes(q) == scratchpad_traffic(q)
            fits += 1
    assert fits == 20


def test_byte_bound_search_is_shared_across_state_limits(monkeypatch):
    """The bench searches with a larger state limit than the mapper: the mapper (bound, plan,
    plan schedule) reuses that search, and every limit gets what a search of its own would give
    (None below the states the search needed); only a search abandoned at a smaller limit is redone."""
    from pimc.mapping import traffic_bound

    real = traffic_bound._search
    calls = []
    monkeypatch.setattr(traffic_bound, "_search", lambda p, limit: calls.append(limit) or real(p, limit))
    p = random_dag(6)
    (best, _), needed = real(p, 10**6)  # the states this search expands (not cached)
    assert 1 < needed < traffic_bound.MAX_STATES
    assert scratchpad_traffic(p, max_states=200_000) == best and calls == [200_000]
    s = map_problem(p, MapOptions(objective=Objective("offchip"), time_limit_s=2.0))
    check_schedule(p, s)
    assert s.bound == best and calls == [200_000]  # the mapper searched nothing
    assert real(p, needed - 1) == (None, needed - 1)  # a search of its own at one state less fails...
    assert scratchpad_traffic(p, needed - 1) is None and scratchpad_traffic(p, needed) == best  # ...so does the cache
    assert calls == [200_000]
    q = dataclasses.replace(p)  # a fresh problem: abandoned at a small limit, searched again at a larger one
    assert scratchpad_traffic(q, needed - 1) is None and scratchpad_traffic(q, 10) is None
    assert scratchpad_traffic(q, needed) == best and calls == [200_000, needed - 1, needed]


def test_offline_packing_places_what_every_greedy_order_fragments():
    """4 bytes; t3 (3 B) and t0 (1 B) fill [1, 2), t2 (1 B) meets t0 in [2, 3) and t1 (3 B) in
    [4, 5): largest-first puts t1 and t3 at 0, t0 at 3, and t2 finds no byte free over [2, 5). The
    packings: t0 at 0, t3 at 1, t2 at 3, t1 at 0 (or mirrored)."""
    from pimc.mapping.traffic_plan import ORDERS, _first_fit, _offline_offsets

    lives = [("t0", "spm", 0.0, 3.0), ("t1", "spm", 4.0, 5.0), ("t2", "spm", 2.0, 5.0), ("t3", "spm", 1.0, 2.0)]
    size = {"t0": 1, "t1": 3, "t2": 1, "t3": 3}
    for key in ORDERS:
        assert _first_fit(lives, sorted(range(4), key=lambda i: key(lives[i], size[lives[i][0]])), size, 4) is None
    offsets = {life[0]: off for life, off in _offline_offsets(lives, size, 4)}
    assert offsets in ({"t0": 0, "t3": 1, "t2": 3, "t1": 0}, {"t0": 3, "t3": 0, "t2": 0, "t1": 1})
    assert _offline_offsets(lives, size, 3) is None  # [1, 2) needs 4 bytes

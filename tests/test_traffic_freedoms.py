"""traffic_bound.scratchpad_traffic_with: the byte-level least traffic if ops could run in place or
activations be rematerialized (freedoms the mapper does not take), on a graph computed by hand."""

from __future__ import annotations

import dataclasses

from mapping_brute_force import tiny_problem
from pimc.mapping import Cost, LinkCost, MappingProblem, OpNode, Tensor
from pimc.mapping.traffic_bound import scratchpad_traffic, scratchpad_traffic_with


def _chain(silu_kind: str = "silu", tail: bool = False, capacity: int = 310) -> MappingProblem:
    """s = linear(x, w) 100 B; a = linear(s, w2) 150 B; b = silu(a) 150 B; y = matmul(b, s) 10 B
    (output); x, w, w2 10 B each, in DRAM. `tail`: z = matmul(y, a) reads a after the silu."""
    sizes = {"x": (10, "input"), "w": (10, "weight"), "w2": (10, "weight"), "s": (100, "activation"),
             "a": (150, "activation"), "b": (150, "activation"), "y": (10, "output")}
    ops = [OpNode("op_s", "linear", ("x", "w"), ("s",)), OpNode("op_a", "linear", ("s", "w2"), ("a",)),
           OpNode("act", silu_kind, ("a",), ("b",)), OpNode("final", "matmul", ("b", "s"), ("y",))]
    if tail:
        sizes["y"], sizes["z"] = (10, "activation"), (10, "output")
        ops.append(OpNode("tail", "matmul", ("y", "a"), ("z",)))
    tensors = {n: Tensor(n, size, kind) for n, (size, kind) in sizes.items()}
    link = LinkCost(1e9, 0.0, 0.0)
    return MappingProblem(tuple(ops), tensors, ("acc",), {"acc": "spm"}, {"spm": capacity, "dram": 10**9},
                          {(op.name, "acc"): Cost(1e-6, 1e-6, 0.0) for op in ops},
                          {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                          home={t: "dram" for t in ("x", "w", "w2")}, spill_to={"spm": "dram"})


def test_in_place_and_rematerialization_on_a_hand_computed_chain():
    """Compulsory: x, w, w2 loaded and y written back, 40 B. The silu needs a + b = 300 B of 310
    while s (100 B) waits for the matmul: s is spilled and reloaded (+200 B). In place the silu
    needs 150 B: nothing moves. Rematerialized, s is dropped and op_s runs again before the matmul;
    x + w beside a and b are 320 B, so one of them (10 B) is fetched again: +10 B."""
    p = _chain()
    assert scratchpad_traffic(p) == scratchpad_traffic_with(p) == 240
    assert scratchpad_traffic_with(p, inplace=True) == 40
    assert scratchpad_traffic_with(p, remat=True) == 50
    assert scratchpad_traffic_with(p, inplace=True, remat=True) == 40


def test_no_in_place_for_other_kinds_or_an_input_read_later():
    """A matmul's output never overwrites its input; nor does the silu's when the tail reads `a`
    after it: at 400 B the matmul needs b + s + y beside a (410 B), so a is spilled and reloaded
    (+300 B), in place or not (z written back: 40 B compulsory)."""
    assert scratchpad_traffic_with(_chain("matmul"), inplace=True) == 240
    p = _chain(tail=True, capacity=400)
    assert scratchpad_traffic_with(p, inplace=True) == scratchpad_traffic(p) == 340


def test_freedoms_only_ever_lower_the_bound():
    """Without freedoms it is scratchpad_traffic (which equals the brute force on these graphs,
    test_evict); each freedom can only remove traffic."""
    for seed in range(12):
        p = tiny_problem(seed)
        need = max(len({*op.inputs, *op.outputs}) for op in p.ops) * 100
        q = dataclasses.replace(p, devices=("acc",), costs={(op.name, "acc"): Cost(1.0, 1.0, 0.0) for op in p.ops},
                                capacity_bytes={**p.capacity_bytes, "spm": need})
        base = scratchpad_traffic(q)
        assert scratchpad_traffic_with(q) == base
        assert scratchpad_traffic_with(q, inplace=True) <= base
        remat = scratchpad_traffic_with(q, remat=True)
        assert scratchpad_traffic_with(q, inplace=True, remat=True) <= remat <= base

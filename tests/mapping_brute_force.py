"""Brute-force optimum of off-chip bytes for tiny two-device mapping problems with a tight scratchpad.

Machine: `acc` computes from scratchpad `spm` (tight, spills to `dram`), `cpu` computes from `dram`
in place and pays its operands as off-chip bytes in its cost table; every tensor has the same size,
so a scratchpad of k tensors holds any k of them (no fragmentation question).

The enumeration covers every device assignment x every topological order x every spill decision
(before each op, which resident tensors stay in `spm`; an evicted tensor still needed and not yet
in DRAM is written back first; a missing input is loaded from DRAM), as a memoized search over
(ops done, tensors in spm, produced tensors with a DRAM copy, tensors that entered spm once). Ops
run one at a time: overlap can only add live tensors, never remove traffic. The objective is the
mapper's: op off-chip bytes from the cost table + bytes of every transfer touching DRAM.

One rule mirrors a documented simplification of the CP-SAT model (cpsat_model's docstring): a
tensor whose producer may run on either device has no fixed home, so it enters each memory at most
once (born or copied there, never spilled and reloaded). Everything else is the natural semantics.
"""

from __future__ import annotations

import random
from functools import cache
from itertools import combinations

from pimc.mapping import Cost, LinkCost, MappingProblem, OpNode, Tensor

SIZE = 100


def tiny_problem(seed: int) -> MappingProblem:
    """4-6 ops reading 1-2 earlier tensors (each read at most 3 times), the last op writes the
    output; each other op runs on acc, cpu or either; spm holds the largest op's operands."""
    r = random.Random(seed)
    n = r.randint(4, 6)
    tensors = {"x0": Tensor("x0", SIZE, "input"), "x1": Tensor("x1", SIZE, "input")}
    reads = {"x0": 0, "x1": 0}
    ops = []
    prev = "x0"
    for i in range(n):
        pool = [t for t in reads if reads[t] < 3 and t != prev]
        extra = r.sample(pool, min(len(pool), r.randint(0, 2)))
        ins = (prev, *extra)
        for t in ins:
            reads[t] += 1
        out = "y" if i == n - 1 else f"t{i}"
        tensors[out] = Tensor(out, SIZE, "output" if i == n - 1 else "activation")
        ops.append(OpNode(f"o{i}", "k", ins, (out,)))
        if out != "y":
            reads[out] = 0
        prev = out
    for t, k in reads.items():  # an activation nobody reads would be a dead output; read it at the end
        if k == 0 and t.startswith("t"):
            ops[-1] = OpNode(ops[-1].name, "k", (*ops[-1].inputs, t), ops[-1].outputs)
    costs = {}
    for i, op in enumerate(ops):
        choice = r.choice(("acc", "cpu")) if i == n - 1 else r.choice(("acc", "acc", "cpu", "both", "both"))
        if choice in ("acc", "both"):
            costs[(op.name, "acc")] = Cost(1.0, 1.0, 0.0)
        if choice in ("cpu", "both"):
            costs[(op.name, "cpu")] = Cost(2.0, 2.0, float(2 * SIZE * len(set(op.inputs) | set(op.outputs))))
    slots = max(len(set(op.inputs) | set(op.outputs)) for op in ops if (op.name, "acc") in costs) if any(
        d == "acc" for _, d in costs) else 1
    link = LinkCost(float(SIZE), 0.0, 0.0)  # one second per tensor
    return MappingProblem(tuple(ops), tensors, ("acc", "cpu"), {"acc": "spm", "cpu": "dram"},
                          {"spm": slots * SIZE, "dram": 10**6}, costs,
                          {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                          home={"x0": "dram", "x1": "dram"}, spill_to={"spm": "dram"})


def brute_force_offchip(p: MappingProblem) -> float:
    """The least off-chip bytes of any schedule (see the module docstring); inf if none."""
    assert all(t.size_bytes == SIZE for t in p.tensors.values())
    slots = p.capacity_bytes["spm"] // SIZE
    names = [op.name for op in p.ops]
    ins = {op.name: frozenset(op.inputs) for op in p.ops}
    outs = {op.name: frozenset(op.outputs) for op in p.ops}
    preds = {n: frozenset(p.graph.predecessors(n)) for n in names}
    initial = frozenset(t for t in p.tensors if p.tensors[t].kind in ("input", "weight"))  # in DRAM at time 0
    fixed = {t: t not in p.producer or len(p.capable_devices(p.producer[t])) == 1 for t in p.tensors}

    def needed(t: str, done: frozenset) -> bool:
        return any(t in ins[o] for o in names if o not in done)

    @cache
    def best(done: frozenset, spm: frozenset, dram: frozenset, entered: frozenset) -> float:
        if len(done) == len(names):
            return 0.0
        result = float("inf")
        for v in names:
            if v in done or not preds[v] <= done:
                continue
            after = done | {v}
            for dev in p.capable_devices(v):
                for k in range(len(spm) + 1):
                    for keep in map(frozenset, combinations(sorted(spm), k)):
                        cost = run(v, dev, done, spm, keep, dram, entered)
                        if cost is None:
                            continue
                        c, spm2, dram2, entered2 = cost
                        live = lambda s: frozenset(t for t in s if needed(t, after))  # noqa: E731
                        rest = best(after, live(spm2), live(dram2), live(entered2))
                        result = min(result, c + rest)
        return result

    def run(v, dev, done, spm, keep, dram, entered):
        """Evict spm - keep, then run v on dev: (bytes, spm, dram copies, entered) or None."""
        cost = 0.0
        dram = set(dram) | initial
        entered = set(entered)
        for t in spm - keep:
            if needed(t, done) and t not in dram:
                cost += SIZE  # spill (or the copy a DRAM reader needs), from spm while still there
                dram.add(t)
        if dev == "acc":
            for t in ins[v] - keep:
                if t not in dram or (not fixed[t] and t in entered):
                    return None
                cost += SIZE
                entered.add(t)
            live = keep | ins[v] | outs[v]
            if len(live) > slots:
                return None
            entered |= outs[v]
            for t in outs[v]:
                if p.tensors[t].kind == "output":
                    cost += SIZE  # compulsory writeback
                    dram.add(t)
            return cost, live, frozenset(dram), frozenset(t for t in entered if not fixed[t])
        for t in ins[v]:
            if t not in dram:
                if t not in keep:
                    return None
                cost += SIZE  # copy to DRAM for the cpu
                dram.add(t)
        cost += p.costs[(v, "cpu")].offchip_bytes
        dram |= outs[v]
        return cost, keep, frozenset(dram), frozenset(t for t in entered if not fixed[t])

    return best(frozenset(), frozenset(), initial, frozenset())

"""Find identical repeated blocks (decoder layers) in a MappingProblem, from the graph alone.

Each op gets a signature: its kind, its cost on every device, and for each operand either the
distance back to its producer (an edge inside the graph) or the operand's kind and size (a weight,
a cache, a function input by name). A run of ops whose signatures repeat with period L is a stack
of identical blocks; no layer names are read. Blocks must only feed the next block (a residual
stream), which is what lets one block's schedule be replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pimc.mapping.problem import MappingProblem


@dataclass(frozen=True)
class Blocks:
    start: int  # index of the first op of block 0
    length: int  # ops per block
    count: int

    def ops(self, problem: MappingProblem, k: int) -> list[str]:
        a = self.start + k * self.length
        return [op.name for op in problem.ops[a:a + self.length]]

    @property
    def end(self) -> int:
        return self.start + self.count * self.length


def _signature(problem: MappingProblem, i: int) -> tuple:
    op = problem.ops[i]
    idx = problem.op_index
    operands = []
    for t in op.inputs:
        prod = problem.producer.get(t)
        if prod is not None and prod != op.name:
            operands.append(("edge", i - idx[prod]))
        else:
            tensor = problem.tensors[t]
            operands.append((tensor.kind, tensor.size_bytes, t if tensor.kind == "input" else ""))
    outs = tuple((problem.tensors[t].kind == "output", problem.tensors[t].size_bytes) for t in op.outputs)
    costs = tuple((d, c.latency_s, c.energy_j, c.offchip_bytes)
                  for d in problem.devices if (c := problem.costs.get((op.name, d))) is not None)
    return (op.kind, tuple(operands), outs, costs)


def find_blocks(problem: MappingProblem, min_count: int = 2) -> Blocks | None:
    """The repeated run covering the most ops (shortest period on ties, fewest crossing tensors
    among alignments), or None."""
    n = len(problem.ops)
    ids: dict[tuple, int] = {}
    h = np.array([ids.setdefault(_signature(problem, i), len(ids)) for i in range(n)], dtype=np.int64)
    best: tuple[int, int, int, int] | None = None  # (-covered, length, crossing, start)
    for length in range(1, n // min_count + 1):
        eq = h[:-length] == h[length:]
        if not eq.any():
            continue
        # runs of True in eq: eq[i] means op i and op i+length match
        padded = np.concatenate(([False], eq, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        for a, b in zip(edges[::2], edges[1::2]):
            run = b - a
            count = run // length + 1
            if count < min_count:
                continue
            covered = count * length
            if best is not None and (-covered, length) > best[:2]:
                continue
            for start in range(a, a + run - (count - 1) * length + 1):
                if start + covered > n:
                    break
                cand = Blocks(start, length, count)
                crossing = _crossing(problem, cand)
                if crossing is None:
                    continue
                key = (-covered, length, crossing, start)
                if best is None or key < best:
                    best = key
    if best is None:
        return None
    return Blocks(int(best[3]), int(best[1]), int(-best[0] // best[1]))


def _crossing(problem: MappingProblem, blocks: Blocks) -> int | None:
    """Bytes produced in one block and read by a later one; None if any skips a block."""
    block_of = {problem.ops[i].name: (i - blocks.start) // blocks.length
                for i in range(blocks.start, blocks.end)}
    total = 0
    for u, v, data in problem.graph.edges(data=True):
        bu, bv = block_of.get(u), block_of.get(v)
        if bu is None or bv is None or bu == bv:
            continue
        if bv != bu + 1:
            return None
        total += sum(problem.tensors[t].size_bytes for t in data["tensors"])
    return total


def counterparts(problem: MappingProblem, blocks: Blocks, names: list[str]) -> dict[str, str] | None:
    """For ops outside the blocks (a partial layer before or after them), the op of block 0 at the
    same position in the period, when every one has the same kind, operand and result sizes and
    costs as its counterpart; else None. (The first and last layer of a stack often differ from the
    others only in reading the function's input or writing its output.)"""
    block0 = blocks.ops(problem, 0)
    out = {}
    for name in names:
        other = block0[(problem.op_index[name] - blocks.start) % blocks.length]
        if _shape(problem, name) != _shape(problem, other):
            return None
        out[name] = other
    return out


def _shape(problem: MappingProblem, name: str) -> tuple:
    op = problem.op_by_name[name]
    sizes = tuple(problem.tensors[t].size_bytes for t in (*op.inputs, *op.outputs))
    costs = tuple((d, c.latency_s, c.energy_j, c.offchip_bytes)
                  for d in problem.devices if (c := problem.costs.get((name, d))) is not None)
    return op.kind, sizes, costs

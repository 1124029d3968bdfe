"""Exact least off-chip traffic of one device on a scratchpad, counting bytes but not addresses.

A lower bound for the off-chip objective (so the mapper can prove a CP-SAT or heuristic schedule
optimal): the device runs ops one at a time; before each op any resident tensor may be evicted
(an activation still needed and never written back is spilled first: its bytes), the op's
missing inputs are loaded from the backing memory (their bytes), and its inputs, outputs and every
tensor kept must fit the scratchpad *in bytes*; outputs are written back once. Every valid
schedule of the problem does at least this much (addresses can only add evictions, and a load or
spill overlapping an op only holds space longer), so the search's optimum is a bound; it is found
by Dijkstra over (ops done, tensors resident, tensors written back) and abandoned (None) past
`max_states`.
"""

from __future__ import annotations

import heapq
import math

from pimc.mapping.problem import MappingProblem

MAX_STATES = 50_000


def scratchpad_traffic(problem: MappingProblem, max_states: int = MAX_STATES) -> int | None:
    """Least bytes moved between the scratchpad and its off-chip backing (loads, spills, reloads,
    output writebacks) over every op order and eviction choice; None if the problem is not one
    device on a scratchpad whose initial tensors start in the off-chip backing, or too large."""
    plan = scratchpad_plan(problem, max_states)
    return None if plan is None else plan[0]


def scratchpad_plan(problem: MappingProblem, max_states: int = MAX_STATES) -> tuple[int, list[str]] | None:
    """scratchpad_traffic and an op order that attains it (in bytes; addresses may add more)."""
    found = scratchpad_actions(problem, max_states)
    return None if found is None else (found[0], [name for kind, name in found[1] if kind == "run"])


def scratchpad_actions(problem: MappingProblem, max_states: int = MAX_STATES) -> tuple[int, list[tuple[str, str]]] | None:
    """scratchpad_traffic and the steps attaining it: ("evict", tensor) and ("run", op), in order.
    Kept on the (immutable) problem with how many states the search expanded, so that the bound,
    the warm start, the plan schedule and a caller with another limit share one search: a search
    that succeeded after n states answers every limit (None below n, as a new search would), and
    one abandoned at limit L answers every limit up to L."""
    found, states = problem.__dict__.get("_scratchpad_actions", (None, -1))
    if found is None and states < max_states:
        found, states = problem.__dict__["_scratchpad_actions"] = _search(problem, max_states)
    return found if found is not None and states <= max_states else None


def _search(problem: MappingProblem, max_states: int) -> tuple[tuple[int, list[tuple[str, str]]] | None, float]:
    """(the least traffic and its steps, the states expanded to find it), or (None, the largest
    limit known to fail: max_states when abandoned, inf when no limit would help)."""
    p = problem
    if len(p.devices) != 1:
        return None, math.inf
    m = p.memory_of[p.devices[0]]
    backing = p.spill_to.get(m)
    if backing is None or backing not in p.offchip_memories:
        return None, math.inf
    if any(t.kind == "state" for t in p.tensors.values()):
        return None, math.inf
    names = sorted(t for t in p.tensors if p.uses[t])
    if any(p.is_initial(t) and p.home.get(t) != backing for t in names):
        return None, math.inf
    bit = {t: 1 << i for i, t in enumerate(names)}
    size = [p.tensors[t].size_bytes for t in names]
    initial = sum(bit[t] for t in names if p.is_initial(t))
    outputs = sum(bit[t] for t in names if p.tensors[t].kind == "output")
    op_bit = {op.name: 1 << i for i, op in enumerate(p.ops)}
    readers = [sum(op_bit[o] for o in p.consumers[t]) for t in names]
    pred = [sum(op_bit[u] for u in p.graph.predecessors(op.name)) for op in p.ops]
    ins = [sum(bit[t] for t in op.inputs) for op in p.ops]
    outs = [sum(bit[t] for t in op.outputs) for op in p.ops]
    cap = p.capacity_bytes[m]
    full = (1 << len(p.ops)) - 1

    def members(mask: int):
        i = 0
        while mask:
            if mask & 1:
                yield i
            mask >>= 1
            i += 1

    def nbytes(mask: int) -> int:
        return sum(size[i] for i in members(mask))

    start = (0, 0, 0)
    best = {start: 0}
    parent: dict[tuple, tuple] = {}  # state -> (previous state, the step that reached it)
    heap = [(0, start)]
    seen = 0
    while heap:
        cost, state = heapq.heappop(heap)
        if best.get(state, -1) < cost:
            continue
        done, resident, saved = state
        if done == full:
            steps = []
            while state != start:
                state, step = parent[state]
                steps.append(step)
            return (cost, steps[::-1]), seen
        seen += 1
        if seen > max_states:
            return None, max_states
        moves = []
        for i in members(resident):  # evict one tensor (every resident one is still needed)
            b = 1 << i
            spill = not b & (initial | saved)
            moves.append((cost + (size[i] if spill else 0), (done, resident & ~b, saved | b if spill else saved),
                          ("evict", names[i])))
        for k in range(len(p.ops)):  # run a ready op
            if done & op_bit[p.ops[k].name] or pred[k] & ~done:
                continue
            missing = ins[k] & ~resident
            if missing & ~(initial | saved):
                continue  # an input evicted without a copy: this path is dead
            live = resident | ins[k] | outs[k]
            if nbytes(live) > cap:
                continue
            step = nbytes(missing) + nbytes(outs[k] & outputs)  # loads, output writebacks
            after = done | op_bit[p.ops[k].name]
            alive = sum(1 << i for i in range(len(names)) if readers[i] & ~after)  # still to be read
            moves.append((cost + step, (after, live & alive, (saved | (outs[k] & outputs)) & alive),
                          ("run", p.ops[k].name)))
        for c, s, step in moves:
            if c < best.get(s, 1 << 62):
                best[s] = c
                parent[s] = (state, step)
                heapq.heappush(heap, (c, s))
    return None, math.inf  # every order runs out of scratchpad


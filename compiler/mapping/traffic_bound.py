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

`scratchpad_traffic_with` answers the same question with freedoms the mapper does not take (its
schedules and the checker keep every op's inputs and outputs apart and run each op once), to
measure what they would be worth: in-place execution (an elementwise or row-wise op, INPLACE_KINDS,
writes its output over an input activation of the same size that it reads last, so the two need
the space once) and rematerialization of one level (an activation is dropped without a copy and
its producer runs again when it is needed, from inputs that are in the scratchpad or have an
off-chip copy, as for any run; recomputing a dropped input first is not modelled: its exact search
ran out of states on the 16-op decoder block).
"""

from __future__ import annotations

import heapq
import math

from pimc.mapping.problem import MappingProblem

MAX_STATES = 50_000

INPLACE_KINDS = frozenset({
    "add", "sub", "mul", "div", "neg", "exp", "relu", "silu", "gelu", "sigmoid", "tanh",  # elementwise
    "softmax", "norm", "layernorm", "rmsnorm",  # row-wise: a row is read whole before it is written
    "rope", "reshape",  # rope rotates pairs of one row; a reshape is a view of the same bytes
})
"""Op kinds (an `llm.` prefix ignored) whose output may overwrite an input of its size, as TFLite's
arena planner, XLA's buffer assignment and TVM's memory planner let them."""


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


def scratchpad_traffic_with(problem: MappingProblem, *, inplace: bool = False, remat: bool = False,
                            max_states: int = MAX_STATES) -> int | None:
    """scratchpad_traffic when ops of INPLACE_KINDS may run in place and/or activations may be
    rematerialized (see the module docstring); not cached. With neither, scratchpad_traffic."""
    found, _ = _search(problem, max_states, inplace, remat)
    return None if found is None else found[0]


def _search(problem: MappingProblem, max_states: int, inplace: bool = False,
            remat: bool = False) -> tuple[tuple[int, list[tuple[str, str]]] | None, float]:
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
    overwritable = [_overwritable(p, op, bit) if inplace else () for op in p.ops]  # (tensor index, bytes)
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

    def needed(done: int) -> int:
        return sum(1 << i for i in range(len(names)) if readers[i] & ~done)

    def useful(done: int) -> int:
        """Tensors an op still to run reads, and with remat the inputs of every run op whose
        outputs are still read: it may run again."""
        keep = needed(done)
        if remat:
            for k in members(done):
                if outs[k] & keep:
                    keep |= ins[k]
        return keep

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
            if spill and remat:  # or drop it, to be computed again
                moves.append((cost, (done, resident & ~b, saved), ("drop", names[i])))
        for k in range(len(p.ops)):  # run a ready op (again, if remat and an output was dropped)
            if pred[k] & ~done:
                continue
            if done & op_bit[p.ops[k].name] and not (remat and outs[k] & ~(resident | saved) & needed(done)):
                continue
            missing = ins[k] & ~resident
            if missing & ~(initial | saved):
                continue  # an input evicted without a copy: this path is dead
            live = resident | ins[k] | outs[k]
            first = not done & op_bit[p.ops[k].name]
            after = done | op_bit[p.ops[k].name]
            shared = max((n for i, n in overwritable[k] if not readers[i] & ~after), default=0)  # in place
            if nbytes(live) - shared > cap:
                continue
            written = outs[k] & outputs if first else 0
            step = nbytes(missing) + nbytes(written)  # loads, output writebacks (once)
            alive = useful(after)
            moves.append((cost + step, (after, live & alive, (saved | written) & alive),
                          ("run", p.ops[k].name)))
        for c, s, step in moves:
            if c < best.get(s, 1 << 62):
                best[s] = c
                parent[s] = (state, step)
                heapq.heappush(heap, (c, s))
    return None, math.inf  # every order runs out of scratchpad


def _overwritable(p: MappingProblem, op, bit: dict[str, int]) -> tuple[tuple[int, int], ...]:
    """(index, bytes) of the inputs `op` may overwrite in place: activations of its one output's
    size, if its kind allows it."""
    if op.kind.removeprefix("llm.") not in INPLACE_KINDS or len(op.outputs) != 1:
        return ()
    out = p.tensors[op.outputs[0]].size_bytes
    return tuple((bit[t].bit_length() - 1, out) for t in dict.fromkeys(op.inputs)
                 if p.tensors[t].kind == "activation" and p.tensors[t].size_bytes == out)

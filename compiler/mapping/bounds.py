"""Lower bounds on each objective that hold for every valid schedule (used for gaps)."""

from __future__ import annotations

import networkx as nx

from pimc.mapping.bandwidth import op_rate, shared_memories
from pimc.mapping.device_bound import chain_bound, restricted_work_bound
from pimc.mapping.objective import Objective
from pimc.mapping.problem import MappingProblem
from pimc.mapping.traffic_bound import scratchpad_traffic


def lower_bound(problem: MappingProblem, objective: Objective) -> float | None:
    """Makespan: the longest of the critical path (each op at its fastest, starting no earlier than
    its loads, see `_makespan`), the total fastest work spread over all devices, the work of ops
    only some devices can run spread over those and chains of such ops on one device (device_bound),
    the loads that must leave each memory spread over its outgoing links and, per shared memory, the
    least bytes its ops and those loads must draw from it over its bandwidth. Energy: each op at its cheapest. Off-chip bytes:
    each op at its cheapest plus compulsory traffic (an off-chip input no reader can read in place,
    an output only scratchpad devices can produce), or for one device on a scratchpad the least
    traffic of any op order and eviction counted in bytes (traffic_bound). None for a mix."""
    p = problem
    if objective.kind == "makespan":
        return _makespan(p)
    if objective.kind == "energy":
        return sum(min(p.costs[(op.name, d)].energy_j for d in p.capable_devices(op.name)) for op in p.ops)
    if objective.kind == "offchip":
        ops = sum(min(p.costs[(op.name, d)].offchip_bytes for d in p.capable_devices(op.name)) for op in p.ops)
        total = 0
        for t, tensor in p.tensors.items():
            readers = [c for c in p.consumers[t]]
            if t in p.home and p.home[t] in p.offchip_memories and readers and all(
                    p.memory_of[d] != p.home[t] for c in readers for d in p.capable_devices(c)):
                total += tensor.size_bytes
            prod = p.producer.get(t)
            if tensor.kind == "output" and prod is not None and all(
                    p.memory_of[d] in p.spill_to and p.spill_to[p.memory_of[d]] in p.offchip_memories
                    for d in p.capable_devices(prod)):
                total += tensor.size_bytes
        exact = scratchpad_traffic(p)  # one device on a scratchpad: every order and eviction, in bytes
        return ops + max(total, exact or 0)
    return None


def _bandwidth_time(p: MappingProblem, memory: str, loads: float = 0.0) -> float:
    """Seconds the bytes that ops must draw from `memory` (plus `loads` bytes that transfers must
    draw from it) need at its full bandwidth."""
    drawn = sum(min(op_rate(p, op.name, d).get(memory, 0.0) * p.costs[(op.name, d)].latency_s
                    for d in p.capable_devices(op.name)) for op in p.ops)
    return (drawn + loads) / p.memory_bandwidth[memory]


def _makespan(p: MappingProblem) -> float:
    """Transfers every schedule makes: a tensor present from the start in a fixed home (an input or
    weight in DRAM) that an op can only read from another memory must first cross a link out of
    its home, and copies move whole tensors one hop at a time. So that op starts no earlier than
    the quickest path of the tensor to any memory it can run in, and among the tensors that must
    leave a home, the first crossings together keep that home's outgoing links busy: the last one
    ends no earlier than their least total time over the number of links, and a reader of its
    tensor still runs after it. A shared home memory also delivers those loads' bytes (a crossing
    draws its rate, capped at the bandwidth, for its whole time) besides what its ops draw."""
    fastest = {op.name: min(p.costs[(op.name, d)].latency_s for d in p.capable_devices(op.name)) for op in p.ops}
    arrival = _arrivals(p)
    finish: dict[str, float] = {}
    for op in p.ops:
        mems = {p.memory_of[d] for d in p.capable_devices(op.name)}
        loaded = max((min(arrival[t].get(m, float("inf")) for m in mems) for t in dict.fromkeys(op.inputs)
                      if t in arrival), default=0.0)
        ready = max((finish[u] for u in p.graph.predecessors(op.name)), default=0.0)
        finish[op.name] = max(loaded, ready) + fastest[op.name]
    bound = max(max(finish.values(), default=0.0), sum(fastest.values()) / max(1, len(p.devices)),
                restricted_work_bound(p, fastest),
                chain_bound(p, fastest, {o: finish[o] - fastest[o] for o in finish}))
    leaving: dict[str, list[tuple[float, float]]] = {}  # home -> (least crossing time, least reader time after)
    drawn: dict[str, float] = {}  # home -> least bytes the crossings draw from it
    for t, times in arrival.items():
        home = p.home[t]
        readers = [c for c in p.consumers[t] if all(p.memory_of[d] != home for d in p.capable_devices(c))]
        out = [lk.time_s(p.tensors[t].size_bytes) for (a, _), lk in p.links.items() if a == home]
        if readers and out:
            leaving.setdefault(home, []).append((min(out), min(fastest[c] for c in readers)))
            if home in p.memory_bandwidth:
                drawn[home] = drawn.get(home, 0.0) + min(p.tensors[t].size_bytes, p.memory_bandwidth[home] * min(out))
    for home, crossings in leaving.items():
        links = sum(1 for a, _ in p.links if a == home)
        busy = max(sum(c for c, _ in crossings) / links, max(c for c, _ in crossings))
        bound = max(bound, busy + min(r for _, r in crossings))
    return max([bound, *(_bandwidth_time(p, m, drawn.get(m, 0.0)) for m in shared_memories(p))])


def _arrivals(p: MappingProblem) -> dict[str, dict[str, float]]:
    """tensor -> {memory: earliest time a copy can be complete there} for tensors that start in a
    fixed home (shortest path over links, each hop moving the whole tensor)."""
    g = nx.DiGraph()
    g.add_edges_from(sorted(p.links))
    out = {}
    for t, home in sorted(p.home.items()):
        if not p.is_initial(t) or not p.consumers[t] or home not in g:
            continue
        size = p.tensors[t].size_bytes
        out[t] = nx.single_source_dijkstra_path_length(g, home, weight=lambda a, b, _: p.links[(a, b)].time_s(size))
    return out

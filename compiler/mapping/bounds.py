"""Lower bounds on each objective that hold for every valid schedule (used for gaps)."""

from __future__ import annotations

from pimc.mapping.bandwidth import op_rate, shared_memories
from pimc.mapping.objective import Objective
from pimc.mapping.problem import MappingProblem
from pimc.mapping.traffic_bound import scratchpad_traffic


def lower_bound(problem: MappingProblem, objective: Objective) -> float | None:
    """Makespan: the longest of the critical path (each op at its fastest, no transfers), the
    total fastest work spread over all devices and, per shared memory, the least bytes its ops must
    draw from it (each op on the device that draws least there) over its bandwidth. Energy: each op at its cheapest. Off-chip bytes:
    each op at its cheapest plus compulsory traffic (an off-chip input no reader can read in place,
    an output only scratchpad devices can produce), or for one device on a scratchpad the least
    traffic of any op order and eviction counted in bytes (traffic_bound). None for a mix."""
    p = problem
    if objective.kind == "makespan":
        fastest = {op.name: min(p.costs[(op.name, d)].latency_s for d in p.capable_devices(op.name)) for op in p.ops}
        finish: dict[str, float] = {}
        for op in p.ops:
            finish[op.name] = fastest[op.name] + max((finish[u] for u in p.graph.predecessors(op.name)), default=0.0)
        return max(max(finish.values(), default=0.0), sum(fastest.values()) / max(1, len(p.devices)),
                   *(_bandwidth_time(p, m) for m in shared_memories(p)))
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


def _bandwidth_time(p: MappingProblem, memory: str) -> float:
    """Seconds the bytes that ops must draw from `memory` need at its full bandwidth."""
    drawn = sum(min(op_rate(p, op.name, d).get(memory, 0.0) * p.costs[(op.name, d)].latency_s
                    for d in p.capable_devices(op.name)) for op in p.ops)
    return drawn / p.memory_bandwidth[memory]

"""From an `llm` function and a target to a `MappingProblem`, and a solved schedule back onto the IR.

Weights are tensors (resident for the whole schedule), not ops; each KV-cache append produces its
cache as `state`; the function's arguments are inputs and its returned values outputs. Op costs come
from the dialect's work counts priced by each device kind's cost model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue

from pimc.dialects import llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.dialects.llm_work import nbytes, op_work, stored_weight_bytes
from pimc.mapping.checker import check_schedule
from pimc.mapping.mapper import MapOptions, map_problem
from pimc.mapping.problem import LinkCost, MappingProblem, OpNode, Tensor
from pimc.mapping.schedule import Schedule
from pimc.errors import PimcError
from pimc.targets import Target, can_run, device_kind, op_cost

SCHED_ATTR = "pimc.sched"
EXCLUDE_ATTR = "pimc.not_on"
"""{device: reason} of the devices a target pass ruled out for an op (e.g. crossbars too full)."""


@dataclass(frozen=True)
class MappedFunction:
    """One function's problem, its checked schedule, and the IR op behind each problem op."""

    name: str
    problem: MappingProblem
    schedule: Schedule
    ops: dict[str, Operation]


def _functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.ops if isinstance(op, func.FuncOp)]


class _Namer:
    """Stable tensor names: arguments, weights and caches by their own names, the rest by position."""

    def __init__(self, fn: func.FuncOp):
        self.names: dict[SSAValue, str] = {arg: f"arg{i}" for i, arg in enumerate(fn.body.block.args)}

    def __call__(self, value: SSAValue) -> str:
        return self.names[value]


def _tensor_kind_and_name(op: Operation, index: int, returned: set[SSAValue]) -> tuple[str, str]:
    if isinstance(op, llm.KVCacheAppendOp):
        return "state", f"cache:{op.cache.data}"
    return ("output" if op.results[0] in returned else "activation"), f"t{index}"


def _weight_bytes(op: llm.WeightOp) -> int:
    """Stored size (llm_work.stored_weight_bytes), whole bytes."""
    return math.ceil(stored_weight_bytes(op.result))


def build_problem(fn: func.FuncOp, target: Target) -> tuple[MappingProblem, dict[str, Operation]]:
    names = _Namer(fn)
    returned = {v for op in fn.body.ops if isinstance(op, func.ReturnOp) for v in op.operands}
    tensors: dict[str, Tensor] = {
        name: Tensor(name, math.ceil(nbytes(arg)), "input") for arg, name in names.names.items()
    }
    nodes: list[OpNode] = []
    ir_ops: dict[str, Operation] = {}
    costs = {}
    devices = tuple(d.name for d in target.devices)
    for index, op in enumerate(fn.body.ops):
        if isinstance(op, func.ReturnOp):
            continue
        if isinstance(op, llm.WeightOp):
            name = f"w:{op.properties['name'].data}"
            names.names[op.result] = name
            size = _weight_bytes(op)  # one tensor per name, stored once: at its least storage size
            if name in tensors:
                size = min(size, tensors[name].size_bytes)
            tensors[name] = Tensor(name, size, "weight")
            continue
        kind, out = _tensor_kind_and_name(op, index, returned)
        names.names[op.results[0]] = out
        tensors[out] = Tensor(out, math.ceil(nbytes(op.results[0])), kind)
        work = op_work(op)
        node = OpNode(f"op{index}", op.name, tuple(dict.fromkeys(names(v) for v in op.operands)), (out,), work.flops)
        nodes.append(node)
        ir_ops[node.name] = op
        excluded = excluded_devices(op)
        capable = [d for d in devices if d not in excluded and can_run(target, d, work)]
        if not capable:
            raise PimcError(f"target '{target.name}': no device can run {op.name} (devices: {', '.join(devices)})")
        for device in capable:
            costs[(node.name, device)] = op_cost(target, device, work)
    spill_to = scratchpads(target)
    problem = MappingProblem(
        ops=tuple(nodes),
        tensors=tensors,
        devices=devices,
        memory_of={d.name: d.memory for d in target.devices},
        capacity_bytes={m.name: m.capacity_bytes for m in target.memories},
        costs=costs,
        links=link_costs(target),
        offchip_memories=target.offchip_memories(),
        home=_backed_homes(nodes, tensors, costs, target, spill_to),
        spill_to=spill_to,
        resident_devices=frozenset(d.name for d in target.devices if device_kind(d.kind).resident_weights),
        memory_bandwidth=shared_bandwidth(target),
    )
    return problem, ir_ops


def shared_bandwidth(target: Target) -> dict[str, float]:
    """{memory: bytes/s} of the off-chip memories: devices and links that use one share its
    bandwidth (mapping/bandwidth.py). On-chip SRAMs are per-device buffers: not limited."""
    offchip = target.offchip_memories()
    return {m.name: m.bandwidth_gb_per_s * 1e9 for m in target.memories if m.name in offchip}


def scratchpads(target: Target) -> dict[str, str]:
    """{scratchpad: backing memory}: an on-chip memory (kind `sram`) that devices compute from and
    that a link joins to exactly one off-chip memory. Tensors there may be spilled to the backing
    memory and reloaded; an `sram` with no such link must hold everything its devices touch."""
    links = target.memory_links()
    offchip = target.offchip_memories()
    out = {}
    for memory in sorted({d.memory for d in target.devices}):
        if target.memory(memory).kind != "sram":
            continue
        backing = sorted(b for a, b in links if a == memory and b in offchip)
        if len(backing) == 1:
            out[memory] = backing[0]
    return out


def _backed_homes(nodes: list[OpNode], tensors: dict[str, Tensor], costs, target: Target,
                  spill_to: dict[str, str]) -> dict[str, str]:
    """Inputs and weights that only scratchpad devices with one backing memory can read start in
    that backing memory (they are copied in when read), not in the scratchpad itself."""
    if not spill_to:
        return {}
    capable: dict[str, set[str]] = {}
    for op, device in costs:
        capable.setdefault(op, set()).add(device)
    readers_of: dict[str, set[str]] = {}
    for node in nodes:
        for name in node.inputs:
            readers_of.setdefault(name, set()).update(capable[node.name])
    home = {}
    for name, tensor in tensors.items():
        if tensor.kind not in ("input", "weight"):
            continue
        readers = readers_of.get(name, set())
        backings = {spill_to.get(target.device(d).memory) for d in readers}
        if readers and len(backings) == 1 and None not in backings:
            home[name] = backings.pop()
    return home


def excluded_devices(op: Operation) -> dict[str, str]:
    """{device: reason} of the devices ruled out for `op` (its `pimc.not_on` attribute)."""
    attr = op.attributes.get(EXCLUDE_ATTR)
    if not isinstance(attr, DictionaryAttr):
        return {}
    return {name: reason.data for name, reason in attr.data.items() if isinstance(reason, StringAttr)}


def exclude_device(op: Operation, device: str, reason: str) -> None:
    """Rule `device` out for `op`, saying why (the report shows the reason)."""
    excluded = {**excluded_devices(op), device: reason}
    op.attributes[EXCLUDE_ATTR] = DictionaryAttr({name: StringAttr(excluded[name]) for name in sorted(excluded)})


def link_costs(target: Target) -> dict[tuple[str, str], LinkCost]:
    """Each link joins the memories of its endpoints (a device endpoint stands for its memory)."""
    return {pair: LinkCost(link.bandwidth_gb_per_s * 1e9, link.latency_ns * 1e-9, link.energy_pj_per_byte * 1e-12)
            for pair, link in target.memory_links().items()}


def map_module(module: ModuleOp, target: Target, options: MapOptions = MapOptions()) -> list[MappedFunction]:
    """Schedule every function of `module` on `target` (CP-SAT by default, see mapper.py); the
    independent checker validates each schedule."""
    mapped = []
    for fn in _functions(module):
        problem, ir_ops = build_problem(fn, target)
        schedule = map_problem(problem, options)
        check_schedule(problem, schedule)
        mapped.append(MappedFunction(fn.sym_name.data, problem, schedule, ir_ops))
    return mapped


def annotate(mapped: list[MappedFunction], target: Target) -> None:
    """Write each op's placement, slot, start and cost onto it as the `pimc.sched` attribute."""
    for fn in mapped:
        for slot, entry in enumerate(fn.schedule.ops_in_order()):
            cost = fn.problem.costs[(entry.op, entry.device)]
            fn.ops[entry.op].attributes[SCHED_ATTR] = DictionaryAttr(
                {
                    "device": StringAttr(entry.device),
                    "kind": StringAttr(target.device(entry.device).kind),
                    "slot": i64_attr(slot),
                    "start_s": f64_attr(entry.start_s),
                    "latency_s": f64_attr(cost.latency_s),
                    "energy_j": f64_attr(cost.energy_j),
                    "offchip_bytes": f64_attr(cost.offchip_bytes),
                }
            )

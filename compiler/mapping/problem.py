"""The mapping problem: ops, tensors, devices, memories, costs and links.

Both the heuristic list scheduler and the CP-SAT model read exactly this, so it is
validated once on construction and carries no solver-specific state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import networkx as nx

from pimc.targets.cost import Cost

__all__ = ["Cost", "Tensor", "OpNode", "LinkCost", "MappingProblem", "TensorKind"]

TensorKind = Literal["input", "weight", "activation", "state", "output"]
_KINDS = ("input", "weight", "activation", "state", "output")


@dataclass(frozen=True)
class Tensor:
    """A buffer. weight/state: resident from 0 to the makespan; input: from 0 to its last use;
    activation: producer start to last consumer end; output: producer start to the makespan."""

    name: str
    size_bytes: int
    kind: TensorKind


@dataclass(frozen=True)
class OpNode:
    """One op of the graph; inputs/outputs are tensor names."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    flops: float = 0.0
    """Its arithmetic (`Work.flops`), for reports and rooflines; the costs already price it."""


@dataclass(frozen=True)
class LinkCost:
    """A directed channel between two memories; it carries one transfer at a time."""

    bandwidth_bytes_per_s: float
    latency_s: float
    energy_j_per_byte: float

    def time_s(self, nbytes: float) -> float:
        return nbytes / self.bandwidth_bytes_per_s + self.latency_s

    def energy_j(self, nbytes: float) -> float:
        return nbytes * self.energy_j_per_byte


@dataclass(frozen=True)
class MappingProblem:
    """ops are in a topological order; costs[(op, device)] absent = the device cannot run it;
    links[(src_memory, dst_memory)] are directed; offchip_memories count toward off-chip bytes.

    home[t] fixes the memory an input, weight or unwritten state starts in (absent: the memory of
    its first consumer's device). spill_to[m] names the backing memory that tensors in scratchpad m
    may be spilled to and reloaded from (links both ways required). resident_devices read their
    weights in place (crossbars, PUD layouts): such a weight lives in the device's memory from time
    0 to the end; every other device streams or copies weights, as its cost model says.

    memory_bandwidth[m] (bytes/s) makes memory m's bandwidth a shared resource (mapping/bandwidth.py):
    every op on a device of m draws its cost's off-chip bytes / latency from it and every transfer
    into or out of m its bytes / duration, and at every instant the draws must fit. Memories absent
    from it (on-chip scratchpads, hand-made problems) are not limited."""

    ops: tuple[OpNode, ...]
    tensors: dict[str, Tensor]
    devices: tuple[str, ...]
    memory_of: dict[str, str]
    capacity_bytes: dict[str, int]
    costs: dict[tuple[str, str], Cost]
    links: dict[tuple[str, str], LinkCost] = field(default_factory=dict)
    offchip_memories: frozenset[str] = frozenset()
    home: dict[str, str] = field(default_factory=dict)
    spill_to: dict[str, str] = field(default_factory=dict)
    resident_devices: frozenset[str] = frozenset()
    memory_bandwidth: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "offchip_memories", frozenset(self.offchip_memories))
        object.__setattr__(self, "resident_devices", frozenset(self.resident_devices))
        self._validate()

    # -- validation ---------------------------------------------------------------------------
    def _validate(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"invalid mapping problem: {msg}")

        for key, t in self.tensors.items():
            if key != t.name:
                bad(f"tensor key {key!r} does not match its name {t.name!r}")
            if t.kind not in _KINDS:
                bad(f"tensor {t.name!r} has unknown kind {t.kind!r} (expected one of {_KINDS})")
            if t.size_bytes < 0:
                bad(f"tensor {t.name!r} has negative size {t.size_bytes}")
        if len(set(self.devices)) != len(self.devices):
            bad(f"duplicate device names in {self.devices}")
        for d in self.devices:
            if d not in self.memory_of:
                bad(f"device {d!r} has no memory in memory_of")
            if self.memory_of[d] not in self.capacity_bytes:
                bad(f"memory {self.memory_of[d]!r} of device {d!r} has no capacity")
        memories = set(self.capacity_bytes)
        for (src, dst), link in self.links.items():
            if src not in memories or dst not in memories:
                bad(f"link {src!r}->{dst!r} names an unknown memory")
            if link.bandwidth_bytes_per_s <= 0 or link.latency_s < 0 or link.energy_j_per_byte < 0:
                bad(f"link {src!r}->{dst!r} needs bandwidth > 0, latency >= 0, energy >= 0")
        for m in self.offchip_memories:
            if m not in memories:
                bad(f"off-chip memory {m!r} has no capacity entry")
        for m, bw in self.memory_bandwidth.items():
            if m not in memories:
                bad(f"bandwidth of {m!r}: no such memory")
            if not bw > 0:
                bad(f"bandwidth of {m!r} must be > 0, got {bw}")

        index: dict[str, int] = {}
        producer: dict[str, str] = {}
        all_producers = self._producer_names()
        for i, op in enumerate(self.ops):
            if op.name in index:
                bad(f"duplicate op name {op.name!r}")
            index[op.name] = i
            for t in (*op.inputs, *op.outputs):
                if t not in self.tensors:
                    bad(f"op {op.name!r} refers to unknown tensor {t!r}")
            for t in op.inputs:
                p = producer.get(t)
                if p is None and t in all_producers and all_producers[t] != op.name:
                    bad(f"ops are not in topological order: {op.name!r} reads {t!r} "
                        f"before its producer {all_producers[t]!r}")
            for t in op.outputs:
                if t in producer:
                    bad(f"tensor {t!r} is produced by both {producer[t]!r} and {op.name!r}")
                kind = self.tensors[t].kind
                if kind in ("input", "weight"):
                    bad(f"op {op.name!r} writes {kind} tensor {t!r}")
                if t in op.inputs and kind != "state":
                    bad(f"op {op.name!r} reads its own output {t!r} (only state may be updated in place)")
                producer[t] = op.name
            if not any((op.name, d) in self.costs for d in self.devices):
                bad(f"no device can run op {op.name!r} (kind {op.kind!r}); devices: {list(self.devices)}")
        for t in self.tensors.values():
            if t.kind in ("activation", "output") and t.name not in producer:
                bad(f"{t.kind} tensor {t.name!r} has no producer")
        for t, m in self.home.items():
            if t not in self.tensors or m not in memories:
                bad(f"home {t!r} -> {m!r} names an unknown tensor or memory")
            if t in producer:
                bad(f"home of {t!r}: only inputs, weights and unwritten state have a fixed home")
        for m, b in self.spill_to.items():
            if m not in memories or b not in memories or m == b:
                bad(f"spill_to {m!r} -> {b!r} needs two different known memories")
            if (m, b) not in self.links or (b, m) not in self.links:
                bad(f"spill_to {m!r} -> {b!r} needs links both ways")
            if b in self.spill_to:
                bad(f"spill_to: backing memory {b!r} is itself a scratchpad")
        for d in self.resident_devices:
            if d not in self.memory_of:
                bad(f"resident device {d!r} is not a device")
        for (op_name, d), c in self.costs.items():
            if op_name not in index or d not in self.memory_of:
                bad(f"cost entry ({op_name!r}, {d!r}) names an unknown op or device")
            if c.latency_s < 0 or c.energy_j < 0 or c.offchip_bytes < 0:
                bad(f"cost of ({op_name!r}, {d!r}) is negative")

    def _producer_names(self) -> dict[str, str]:
        # Computed without the cache: used during validation, before the problem is trusted.
        return {t: op.name for op in self.ops for t in op.outputs}

    # -- derived views (cached; the problem is immutable) ------------------------------------
    @cached_property
    def op_by_name(self) -> dict[str, OpNode]:
        return {op.name: op for op in self.ops}

    @cached_property
    def op_index(self) -> dict[str, int]:
        return {op.name: i for i, op in enumerate(self.ops)}

    @cached_property
    def producer(self) -> dict[str, str]:
        """tensor -> the op that writes it (absent for inputs/weights and unwritten state)."""
        return self._producer_names()

    @cached_property
    def consumers(self) -> dict[str, tuple[str, ...]]:
        """tensor -> ops that read it, in op order (excluding an in-place writer of state)."""
        return self._ops_by_tensor(lambda op: (t for t in op.inputs if self.producer.get(t) != op.name))

    @cached_property
    def graph(self) -> nx.DiGraph:
        """Op dependency DAG; edge attribute `tensors` lists the tensors that create the edge."""
        g = nx.DiGraph()
        g.add_nodes_from(op.name for op in self.ops)
        for op in self.ops:
            for t in dict.fromkeys(op.inputs):
                p = self.producer.get(t)
                if p is not None and p != op.name:
                    if g.has_edge(p, op.name):
                        g.edges[p, op.name]["tensors"].append(t)
                    else:
                        g.add_edge(p, op.name, tensors=[t])
        return g

    def capable_devices(self, op: str) -> tuple[str, ...]:
        """Devices (in problem order) that have a cost entry for op."""
        return tuple(d for d in self.devices if (op, d) in self.costs)

    def link(self, src_memory: str, dst_memory: str) -> LinkCost | None:
        return self.links.get((src_memory, dst_memory))

    def is_initial(self, tensor: str) -> bool:
        """Present before any op runs: inputs, weights and state no op writes."""
        return tensor not in self.producer

    @cached_property
    def uses(self) -> dict[str, tuple[str, ...]]:
        """tensor -> every op that reads or writes it, in op order."""
        return self._ops_by_tensor(lambda op: (*op.inputs, *op.outputs))

    def _ops_by_tensor(self, tensors_of: Callable[[OpNode], Iterable[str]]) -> dict[str, tuple[str, ...]]:
        """tensor -> the ops (in op order, each once) whose `tensors_of` lists it."""
        out: dict[str, list[str]] = {t: [] for t in self.tensors}
        for op in self.ops:
            for t in dict.fromkeys(tensors_of(op)):
                out[t].append(op.name)
        return {t: tuple(v) for t, v in out.items()}

    def pinned(self, tensor: str) -> bool:
        """Weights and state stay in their home memory from time 0 (or their write) to the end."""
        return self.tensors[tensor].kind in ("weight", "state")

"""A schedule: where and when each op runs, where each tensor lives, what moves over links.

Solver-neutral (list heuristic and CP-SAT both return it) and serialisable with a stable
key order so bundles can store it and tests can compare schedules byte-for-byte.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pimc.mapping.problem import MappingProblem

__all__ = ["OpSlot", "Residency", "Transfer", "Schedule", "crosses_offchip"]

SCHEMA = "pimc.schedule/1"


@dataclass(frozen=True)
class OpSlot:
    op: str
    device: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Residency:
    """tensor occupies [offset, offset+size) of memory during [start_s, end_s); offset None =
    not placed at an address (capacity is still checked). size_bytes: the tensor's size, so a
    schedule read back from a bundle can still show memory occupancy."""

    tensor: str
    memory: str
    start_s: float
    end_s: float
    offset_bytes: int | None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Transfer:
    tensor: str
    src_memory: str
    dst_memory: str
    start_s: float
    end_s: float
    bytes: int

    def crosses_offchip(self, offchip_memories: Collection[str]) -> bool:
        """Whether either end is an off-chip memory (`crosses_offchip`)."""
        return crosses_offchip(self.src_memory, self.dst_memory, offchip_memories)


def crosses_offchip(src_memory: str, dst_memory: str, offchip_memories: Collection[str]) -> bool:
    """Whether a transfer src -> dst has an off-chip end: then its bytes are off-chip traffic that
    no op's cost counts (an op computes from the transfer's destination). The one rule for
    `Schedule.offchip_bytes`, CP-SAT's off-chip objective and the reports'
    `pimc.transfers.TransferEvent.offchip`."""
    return src_memory in offchip_memories or dst_memory in offchip_memories


@dataclass(frozen=True)
class Schedule:
    slots: dict[str, OpSlot]
    residency: tuple[Residency, ...]
    transfers: tuple[Transfer, ...]
    solver: str
    status: str
    objective: float
    bound: float | None
    gap: float | None
    objective_kind: str = "makespan"
    """What `objective` measures: makespan (s), energy (J), offchip (bytes) or a mix (unitless)."""
    note: str = ""
    """How the schedule was made and why this solver (fallbacks are never silent)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "residency", tuple(self.residency))
        object.__setattr__(self, "transfers", tuple(self.transfers))

    @property
    def makespan_s(self) -> float:
        ends = [s.end_s for s in self.slots.values()] + [t.end_s for t in self.transfers]
        return max(ends, default=0.0)

    def energy_j(self, problem: MappingProblem) -> float:
        """Op energy from the cost table plus link energy of every transfer."""
        e = sum(problem.costs[(s.op, s.device)].energy_j for s in self.ops_in_order())
        for t in self.transfers:
            e += problem.links[(t.src_memory, t.dst_memory)].energy_j(t.bytes)
        return e

    def offchip_bytes(self, problem: MappingProblem) -> float:
        """Op off-chip bytes from the cost table plus transfers touching an off-chip memory."""
        ops = sum(problem.costs[(s.op, s.device)].offchip_bytes for s in self.ops_in_order())
        return ops + sum(t.bytes for t in self.transfers if t.crosses_offchip(problem.offchip_memories))

    @property
    def busy_s(self) -> dict[str, float]:
        """device -> total time running ops (devices without ops are absent), sorted by device."""
        out: dict[str, float] = {}
        for s in self.ops_in_order():
            out[s.device] = out.get(s.device, 0.0) + (s.end_s - s.start_s)
        return dict(sorted(out.items()))

    def ops_in_order(self) -> list[OpSlot]:
        return sorted(self.slots.values(), key=lambda s: (s.start_s, s.device, s.op))

    # -- serialisation ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; key order is fixed and slots are listed in ops_in_order()."""
        return {
            "schema": SCHEMA,
            "solver": self.solver,
            "status": self.status,
            "objective": float(self.objective),
            "bound": None if self.bound is None else float(self.bound),
            "gap": None if self.gap is None else float(self.gap),
            "objective_kind": self.objective_kind,
            "note": self.note,
            "makespan_s": float(self.makespan_s),
            "slots": [
                {"op": s.op, "device": s.device, "start_s": float(s.start_s), "end_s": float(s.end_s)}
                for s in self.ops_in_order()
            ],
            "residency": [
                {"tensor": r.tensor, "memory": r.memory, "start_s": float(r.start_s),
                 "end_s": float(r.end_s),
                 "offset_bytes": None if r.offset_bytes is None else int(r.offset_bytes),
                 "size_bytes": None if r.size_bytes is None else int(r.size_bytes)}
                for r in self.residency
            ],
            "transfers": [
                {"tensor": t.tensor, "src_memory": t.src_memory, "dst_memory": t.dst_memory,
                 "start_s": float(t.start_s), "end_s": float(t.end_s), "bytes": int(t.bytes)}
                for t in self.transfers
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a schedule: schema {data.get('schema')!r}, expected {SCHEMA!r}")
        slots = {d["op"]: OpSlot(d["op"], d["device"], float(d["start_s"]), float(d["end_s"]))
                 for d in data["slots"]}
        res = tuple(
            Residency(d["tensor"], d["memory"], float(d["start_s"]), float(d["end_s"]),
                      None if d["offset_bytes"] is None else int(d["offset_bytes"]),
                      None if d.get("size_bytes") is None else int(d["size_bytes"]))
            for d in data["residency"])
        tr = tuple(
            Transfer(d["tensor"], d["src_memory"], d["dst_memory"], float(d["start_s"]),
                     float(d["end_s"]), int(d["bytes"]))
            for d in data["transfers"])
        return cls(slots=slots, residency=res, transfers=tr, solver=data["solver"],
                   status=data["status"], objective=float(data["objective"]),
                   bound=None if data["bound"] is None else float(data["bound"]),
                   gap=None if data["gap"] is None else float(data["gap"]),
                   objective_kind=data.get("objective_kind", "makespan"), note=data.get("note", ""))

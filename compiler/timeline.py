"""Timelines: the device events of a lowered program, statically per phase or as a run executes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.interpreter import Interpreter
from xdsl.ir import Operation

from pimc.dialects.sched import Scheduled, placement_of

if TYPE_CHECKING:
    from pimc.mapping.schedule import Schedule


@dataclass(frozen=True)
class Event:
    """One scheduled op on one device: when it runs (seconds from the start of the run) and what it costs."""

    phase: str
    step: int
    device: str
    op: str
    start_s: float
    end_s: float
    energy_j: float
    offchip_bytes: float
    slot: int | None = None
    """The op's position in its phase's schedule (its row in the placement table)."""


def op_event(op: Operation, phase: str, step: int, offset_s: float) -> Event:
    place = placement_of(op)
    start = offset_s + place.start_s
    kernel = op.properties.get("kernel")  # a library-kernel op names the operator it runs
    label = kernel.data if isinstance(kernel, StringAttr) else op.name
    return Event(phase, step, place.device, label, start, start + place.latency_s, place.energy_j, place.offchip_bytes,
                 place.slot)


def function(module: ModuleOp, name: str) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise KeyError(f"the program has no function @{name}")


def phase_events(module: ModuleOp, phase: str, step: int = 0, offset_s: float = 0.0) -> list[Event]:
    """The events one call of `phase` produces, from the schedule written into its kernels."""
    return [op_event(op, phase, step, offset_s) for op in function(module, phase).walk() if op.has_trait(Scheduled)]


def span_s(events: list[Event]) -> float:
    return max((e.end_s for e in events), default=0.0) - min((e.start_s for e in events), default=0.0)


def calls(events: list[Event], schedules: Mapping[str, Schedule]) -> list[tuple[str, int, float]]:
    """(phase, step, start of that call) for every call of a phase in the run, in time order: where
    to place a phase's schedule (its transfers and residency) on the run's time axis."""
    first: dict[tuple[str, int], float] = {}
    for e in events:
        key = (e.phase, e.step)
        first[key] = min(first.get(key, e.start_s), e.start_s)
    out = []
    for (phase, step), start in first.items():
        schedule = schedules.get(phase)
        earliest = min((s.start_s for s in schedule.slots.values()), default=0.0) if schedule else 0.0
        out.append((phase, step, start - earliest))
    return sorted(out, key=lambda c: (c[2], c[0], c[1]))


def call_offsets(events: list[Event], schedules: Mapping[str, Schedule]) -> list[tuple[str, float]]:
    """(phase, start of that call) for every call of a phase in the run, in time order."""
    return [(phase, offset) for phase, _, offset in calls(events, schedules)]


class TimelineRecorder(Interpreter.Listener):
    """Records every kernel the interpreter executes; each call of a function starts where the last ended."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.phase, self.step, self.offset_s = "", 0, 0.0

    def begin(self, phase: str, step: int) -> None:
        self.offset_s = max((e.end_s for e in self.events), default=0.0)
        self.phase, self.step = phase, step

    def will_interpret_op(self, op: Operation, args: tuple) -> None:
        if op.has_trait(Scheduled):
            self.events.append(op_event(op, self.phase, self.step, self.offset_s))

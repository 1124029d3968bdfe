"""What every device kind shares: the strict base model, per-width tables and the kind bundle.

A device kind (cpu, dram_pud, cim, systolic, fpga ...) lives in its own package `targets/<kind>/`
and exports one `DeviceKind`; `targets/kinds.py` lists them. Nothing here knows any concrete kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pimc.dialects.work import Work
    from pimc.targets.cost import Cost
    from pimc.targets.schema import Memory, Target

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
"""Names are used in `--set NAME.FIELD=VALUE`, so no dots, '=' or spaces."""


class StrictModel(BaseModel):
    """Typos and wrong types in a target file are errors, never silently ignored or coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def width_key(compute_bits: int) -> str:
    """The per-width table key for an operand width: "int8" when <= 8 bits, else "fp32"."""
    if compute_bits <= 0:
        raise ValueError(f"compute_bits must be > 0, got {compute_bits}")
    return "int8" if compute_bits <= 8 else "fp32"


class PerWidth(StrictModel):
    """A number per operand-width class: `fp32` for compute_bits > 8, `int8` for <= 8."""

    fp32: float = Field(ge=0, description="value for operands wider than 8 bits")
    int8: float = Field(ge=0, description="value for operands of 8 bits or fewer")

    def at(self, compute_bits: int) -> float:
        return getattr(self, width_key(compute_bits))


class DeviceBase(StrictModel):
    """Fields every device has. Subclasses add `kind: Literal["<kind>"]` and their numbers."""

    name: str = Field(pattern=NAME_PATTERN, description="unique name within the target")
    kind: str = Field(description="device kind; selects the schema and cost model")
    memory: str = Field(description="name of the memory this device reads and writes operands from")
    description: str | None = Field(default=None, description="free text, e.g. the part number")


@dataclass(frozen=True)
class Roofline:
    """The ceilings a roofline plot draws for a device, read from its own numbers.

    `peaks` are (label, arithmetic ops/s) of the units that run ops (an FMA counts as 2, as in
    `Work.flops`); `bandwidth_bytes_per_s` is the rate its cost model charges off-chip bytes at.
    `meaning` says in one line what these peaks are, since they differ by kind.
    """

    peaks: tuple[tuple[str, float], ...]
    bandwidth_bytes_per_s: float
    meaning: str


CostFn = Callable[["DeviceBase", "Memory", "Work"], "Cost"]
TargetCostFn = Callable[["Target", "DeviceBase", "Work"], "Cost"]
SupportsFn = Callable[["DeviceBase", "Work"], bool]
RooflineFn = Callable[["DeviceBase", "Memory"], Roofline]


def runs_everything(device: DeviceBase, work: Work) -> bool:
    """A general-purpose device (a CPU) runs every op."""
    return True


@dataclass(frozen=True)
class DeviceKind:
    """One device kind: its schema class, its cost model, and which ops it can run at all.

    The mapper offers an op only to devices whose kind `supports` its work (a DRAM-PUD module runs
    GeMVs, not softmax); the cost model is then never asked about ops the device cannot run.
    """

    kind: str
    schema: type[DeviceBase]
    cost: CostFn
    supports: SupportsFn = runs_everything
    target_cost: TargetCostFn | None = None
    """For kinds whose cost reads other parts of the target (a DRAM-PUD module's host CPU):
    `op_cost` calls it instead of `cost`."""
    resident_weights: bool = False
    """The device computes on weights stored in place (crossbar cells, PUD bit-plane layout): the
    mapper keeps such weights in the device's memory for the whole schedule instead of streaming."""
    roofline: RooflineFn | None = None
    """Peak rates and bandwidth for roofline plots; None where a peak rate would mislead (the
    rate of in-memory compute depends on bit widths and layout, not on a clock times units)."""

"""The `cim` device kind: resistive crossbars running resident-weight linear layers (PIM-LLM)."""

from pimc.targets.cim.cost import CimBreakdown, breakdown, cim_cost, program_cost, supports, work_tiling
from pimc.targets.cim.schema import CimDevice
from pimc.targets.cim.tiling import CrossbarTiling, tile_linear
from pimc.targets.device import DeviceKind

KIND = DeviceKind(kind="cim", schema=CimDevice, cost=cim_cost, supports=supports, resident_weights=True)

__all__ = [
    "KIND",
    "CimBreakdown",
    "CimDevice",
    "CrossbarTiling",
    "breakdown",
    "cim_cost",
    "program_cost",
    "supports",
    "tile_linear",
    "work_tiling",
]

"""The DRAM processing-using-DRAM device kind (MVDRAM): GeMVs in commodity DDR4 by RowCopy and MAJ."""

from pimc.targets.device import DeviceKind
from pimc.targets.dram_pud.cost import breakdown, needs_target, pud_cost, supports
from pimc.targets.dram_pud.schema import DdrCurrents, DdrTimings, PudDevice

KIND = DeviceKind(kind="dram_pud", schema=PudDevice, cost=needs_target, supports=supports, target_cost=pud_cost, resident_weights=True)

__all__ = ["KIND", "DdrCurrents", "DdrTimings", "PudDevice", "breakdown", "pud_cost", "supports"]

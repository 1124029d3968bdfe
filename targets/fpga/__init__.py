"""The FPGA device kind: a MEADOW-style LLM accelerator costed by PE cycles and DMA at a set bandwidth."""

from pimc.targets.device import DeviceKind
from pimc.targets.fpga.cost import fpga_cost, fpga_supports
from pimc.targets.fpga.schema import FpgaDevice

KIND = DeviceKind(kind="fpga", schema=FpgaDevice, cost=fpga_cost, supports=fpga_supports)

__all__ = ["KIND", "FpgaDevice", "fpga_cost", "fpga_supports"]

"""The `systolic` device kind: a TPU-like output-stationary MAC array with a vector unit.

It runs every `llm` op (GEMMs on the array, the rest on the vector unit), so it is both the
attention engine beside the crossbars and, alone, the TPU-like baseline.
"""

from pimc.targets.device import DeviceKind, Roofline, runs_everything
from pimc.targets.systolic.cost import Gemm, SystolicBreakdown, breakdown, systolic_cost
from pimc.targets.systolic.schema import SystolicDevice



def systolic_roofline(device: SystolicDevice, memory) -> Roofline:
    """The MAC array at full occupancy (no fill or drain), its vector unit, and its memory's bandwidth."""
    array_ops = 2.0 * device.rows * device.cols * device.clock_hz
    return Roofline(
        peaks=((f"array, int{device.operand_bits} MAC", array_ops), ("vector unit", device.vector_lanes * device.clock_hz)),
        bandwidth_bytes_per_s=memory.bandwidth_gb_per_s * 1e9,
        meaning=f"{device.rows}x{device.cols} PEs x {device.clock_mhz:g} MHz (no fill/drain); {memory.name} bandwidth",
    )


KIND = DeviceKind(kind="systolic", schema=SystolicDevice, cost=systolic_cost, supports=runs_everything,
                  roofline=systolic_roofline)

__all__ = ["KIND", "Gemm", "SystolicBreakdown", "SystolicDevice", "breakdown", "systolic_cost"]

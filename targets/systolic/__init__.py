"""The `systolic` device kind: a TPU-like output-stationary MAC array with a vector unit.

It runs every `llm` op (GEMMs on the array, the rest on the vector unit), so it is both the
attention engine beside the crossbars and, alone, the TPU-like baseline.
"""

from pimc.targets.device import DeviceKind, runs_everything
from pimc.targets.systolic.cost import Gemm, SystolicBreakdown, breakdown, systolic_cost
from pimc.targets.systolic.schema import SystolicDevice

KIND = DeviceKind(kind="systolic", schema=SystolicDevice, cost=systolic_cost, supports=runs_everything)

__all__ = ["KIND", "Gemm", "SystolicBreakdown", "SystolicDevice", "breakdown", "systolic_cost"]

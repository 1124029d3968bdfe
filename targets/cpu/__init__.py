"""The CPU device kind: a roofline over SIMD peak rate and memory bandwidth."""

from pimc.targets.cpu.cost import cpu_cost
from pimc.targets.cpu.schema import CpuDevice
from pimc.targets.device import DeviceKind

KIND = DeviceKind(kind="cpu", schema=CpuDevice, cost=cpu_cost)

__all__ = ["KIND", "CpuDevice", "cpu_cost"]

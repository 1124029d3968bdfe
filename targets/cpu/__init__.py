"""The CPU device kind: a roofline over SIMD peak rate and memory bandwidth."""

from pimc.targets.cpu.cost import cpu_cost
from pimc.targets.cpu.schema import CpuDevice
from pimc.targets.device import DeviceKind, Roofline



def cpu_roofline(device: CpuDevice, memory) -> Roofline:
    """The two SIMD peaks of all cores and the bandwidth the cores sustain (what `cpu_cost` uses)."""
    return Roofline(
        peaks=(("SIMD peak, int8", device.peak_ops_per_s(8)), ("SIMD peak, fp32", device.peak_ops_per_s(32))),
        bandwidth_bytes_per_s=device.sustained_bytes_per_s(memory.bandwidth_gb_per_s),
        meaning=f"{device.cores} cores x {device.freq_ghz:g} GHz x SIMD ops/cycle; "
                f"{memory.name} bandwidth x {device.bandwidth_efficiency:g} sustained",
    )


KIND = DeviceKind(kind="cpu", schema=CpuDevice, cost=cpu_cost, roofline=cpu_roofline)

__all__ = ["KIND", "CpuDevice", "cpu_cost"]

"""The FPGA device kind: a MEADOW-style LLM accelerator costed by PE cycles and DMA at a set bandwidth."""

from pimc.targets.device import DeviceKind, Roofline
from pimc.targets.fpga.cost import fpga_cost, fpga_supports
from pimc.targets.fpga.schema import FpgaDevice



def fpga_roofline(device: FpgaDevice, memory) -> Roofline:
    """The parallel-MAC PEs (GEMMs, QKᵀ), the vector unit, and the DMA bandwidth `fpga_cost` uses."""
    pe_ops = 2.0 * device.parallel_pes * device.parallel_pe_macs * device.clock_hz
    return Roofline(
        peaks=((f"PEs, int{device.operand_bits} MAC", pe_ops), ("vector unit", device.vector_lanes * device.clock_hz)),
        bandwidth_bytes_per_s=min(device.offchip_gbps / 8, memory.bandwidth_gb_per_s) * 1e9,
        meaning=f"{device.parallel_pes} PEs x {device.parallel_pe_macs} MACs x {device.clock_mhz:g} MHz; "
                f"off-chip min({device.offchip_gbps:g} Gbit/s, {memory.name})",
    )


KIND = DeviceKind(kind="fpga", schema=FpgaDevice, cost=fpga_cost, supports=fpga_supports, roofline=fpga_roofline)

__all__ = ["KIND", "FpgaDevice", "fpga_cost", "fpga_supports"]

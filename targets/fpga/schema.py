"""Schema of an FPGA LLM accelerator in the style of MEADOW (arXiv 2503.11663).

A clocked array of processing elements of two types — parallel-MAC PEs (each an L-lane dot-product
unit) and broadcast PEs (each scales an L-lane vector by one broadcast operand) — a softmax unit
(max → exp LUT → divide), a vector unit for norms and elementwise ops, a weight-unpack unit,
on-chip BRAM/URAM buffers, and DMA engines to an off-chip DRAM of configurable bandwidth.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pimc.targets.device import DeviceBase


class FpgaDevice(DeviceBase):
    """An FPGA accelerator costed cycle by cycle (see `cost.py`)."""

    kind: Literal["fpga"] = "fpga"
    clock_mhz: float = Field(gt=0, description="accelerator clock, MHz")
    parallel_pes: int = Field(gt=0, description="parallel-MAC PEs (dot products along the inner dimension)")
    parallel_pe_macs: int = Field(gt=0, description="int8 MACs per parallel-MAC PE per cycle (dot-product lanes)")
    broadcast_pes: int = Field(ge=0, description="broadcast PEs (one operand broadcast to a vector: the SV stage of TPHS)")
    broadcast_pe_macs: int = Field(gt=0, description="int8 MACs per broadcast PE per cycle (vector lanes)")
    operand_bits: int = Field(gt=0, le=8, description="widest weight/activation code the PEs multiply")
    activation_bits: int = Field(gt=0, le=32, description="bits per activation element moved to and from off-chip memory")
    score_bits: int = Field(
        32, gt=0, le=32,
        description="bits per attention score (QKᵀ before softmax) the GEMM form stores off chip; probabilities move at activation_bits",
    )
    bram_bytes: int = Field(ge=0, description="block RAM available to the accelerator's buffers, bytes")
    uram_bytes: int = Field(ge=0, description="UltraRAM available to the accelerator's buffers, bytes")
    offchip_gbps: float = Field(gt=0, description="off-chip DRAM bandwidth available to the accelerator, Gbit/s")
    offchip_latency_ns: float = Field(ge=0, description="latency of a DMA transfer before its first byte arrives, ns")
    dma_engines: int = Field(gt=0, description="DMA channels; 2 or more double-buffer (transfers overlap compute)")
    stream_tile_bytes: int = Field(
        4096, gt=0,
        description="buffer half of a streamed (untiled) transfer, bytes; capped at an eighth of the on-chip buffers",
    )
    softmax_lanes: int = Field(gt=0, description="scores per cycle through each pass of the softmax unit")
    softmax_latency_cycles: int = Field(ge=0, description="pipeline depth of max → exp LUT → divide, cycles")
    vector_lanes: int = Field(gt=0, description="elementwise/norm operations per cycle of the vector unit")
    unpack_ids_per_cycle: int = Field(gt=0, description="packed-weight chunk IDs the unpack unit expands per cycle")
    op_overhead_cycles: int = Field(ge=0, description="cycles to issue one op's instructions/descriptors")
    static_power_w: float = Field(ge=0, description="power drawn while busy regardless of work, W")
    energy_pj_per_mac: float = Field(ge=0, description="dynamic energy of one int8 MAC, pJ")
    energy_pj_per_vector_op: float = Field(ge=0, description="dynamic energy of one vector/softmax-unit op, pJ")
    energy_pj_per_onchip_byte: float = Field(ge=0, description="BRAM/URAM access energy per byte, pJ")

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def onchip_bytes(self) -> int:
        """On-chip buffer capacity for tiles and TPHS intermediates."""
        return self.bram_bytes + self.uram_bytes

    @property
    def score_bytes(self) -> float:
        """Bytes per attention score off chip (the GEMM form's QKᵀ output)."""
        return self.score_bits / 8

    @property
    def act_bytes(self) -> float:
        """Bytes per activation element off chip."""
        return self.activation_bits / 8

"""Schema of a digital systolic array (TPU-like): a rows x cols grid of integer MAC PEs with an
SRAM scratchpad and a vector unit for elementwise work, streaming from its memory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pimc.targets.device import DeviceBase


class SystolicDevice(DeviceBase):
    """An output-stationary MAC array (SCALE-Sim's cycle model) plus a SIMD vector unit."""

    kind: Literal["systolic"] = "systolic"
    rows: int = Field(gt=0, description="PE rows")
    cols: int = Field(gt=0, description="PE columns")
    operand_bits: int = Field(ge=1, le=32, description="integer operand width of a PE multiplier")
    accumulator_bits: int = Field(ge=8, le=64, description="accumulator width of a PE")
    dataflow: Literal["output_stationary"] = Field(description="what stays in the PEs while operands stream")
    clock_mhz: float = Field(gt=0, description="array clock, MHz")
    mac_energy_pj: float = Field(ge=0, description="energy of one operand_bits MAC incl. PE registers, pJ")
    sram_bytes: int = Field(gt=0, description="on-chip scratchpad for activations and streamed operands, bytes")
    sram_energy_pj_per_byte: float = Field(ge=0, description="scratchpad access energy, pJ/byte")
    vector_lanes: int = Field(gt=0, description="elementwise ops per cycle of the vector unit")
    vector_energy_pj_per_op: float = Field(ge=0, description="energy of one vector-unit op (fp32), pJ")
    static_power_w: float = Field(ge=0, description="power while busy regardless of work, W")
    op_overhead_cycles: int = Field(ge=0, description="fixed cycles per op (instruction issue, setup)")

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

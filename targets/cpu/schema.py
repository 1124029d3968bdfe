"""Schema of a CPU device: cores x clock x SIMD rate per width, energies and launch overhead."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pimc.targets.device import DeviceBase, PerWidth


class CpuDevice(DeviceBase):
    """A multi-core CPU with SIMD units, costed as a roofline against its memory."""

    kind: Literal["cpu"] = "cpu"
    cores: int = Field(gt=0, description="cores used for kernels")
    freq_ghz: float = Field(gt=0, description="sustained clock frequency, GHz")
    simd_ops_per_cycle_per_core: PerWidth = Field(
        description="peak arithmetic ops per cycle per core (an FMA counts as 2)"
    )
    energy_pj_per_op: PerWidth = Field(
        description="dynamic energy per arithmetic op incl. amortised instruction overhead, pJ"
    )
    static_power_w: float = Field(ge=0, description="power drawn while busy regardless of work, W")
    op_overhead_s: float = Field(ge=0, description="fixed dispatch/launch time per kernel, s")

    @field_validator("simd_ops_per_cycle_per_core")
    @classmethod
    def _rates_positive(cls, v: PerWidth) -> PerWidth:
        if v.fp32 <= 0 or v.int8 <= 0:
            raise ValueError(f"must be greater than 0 (got fp32={v.fp32}, int8={v.int8})")
        return v

    def peak_ops_per_s(self, compute_bits: int) -> float:
        """Peak arithmetic rate of all cores for operands of `compute_bits` bits, ops/s."""
        return self.cores * self.freq_ghz * 1e9 * self.simd_ops_per_cycle_per_core.at(compute_bits)

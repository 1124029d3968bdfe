"""Schema of a CPU device: cores x clock x SIMD rate per width, energies and launch overhead.

Two energy models, one per device:
- per op: `energy_pj_per_op` x ops + `static_power_w` x time (a core whose power follows its work);
- package power: `busy_power_w` x time (a desktop package that draws about its power limit whenever
  its cores run a kernel, stalled on memory or not: cores keep clocking, speculating and polling).
`uncore_power_w` prices the package while its cores wait on another device it drives (a PUD host).
`weight_format` says which bytes its kernels read for a low-bit weight (`pimc.targets.cpu.weight_format`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pimc.targets.device import DeviceBase, PerWidth


class CpuDevice(DeviceBase):
    """A multi-core CPU with SIMD units, costed as a roofline against its memory."""

    kind: Literal["cpu"] = "cpu"
    cores: int = Field(gt=0, description="cores used for kernels")
    freq_ghz: float = Field(gt=0, description="sustained clock frequency, GHz")
    simd_ops_per_cycle_per_core: PerWidth = Field(
        description="peak arithmetic ops per cycle per core (an FMA counts as 2)"
    )
    energy_pj_per_op: PerWidth | None = Field(
        default=None,
        description="dynamic energy per arithmetic op incl. amortised instruction overhead, pJ "
        "(the per-op model; give it with static_power_w, or give busy_power_w instead)",
    )
    static_power_w: float | None = Field(
        default=None, ge=0, description="power drawn while busy regardless of work, W (the per-op model)"
    )
    busy_power_w: float | None = Field(
        default=None, gt=0,
        description="package power while its cores run a kernel, memory-bound or not, W; replaces "
        "energy_pj_per_op and static_power_w (memory energy is still charged per byte)",
    )
    uncore_power_w: float | None = Field(
        default=None, ge=0,
        description="package power while every core waits and the uncore (LLC, ring, memory controller) "
        "works, e.g. while a PUD device this CPU hosts computes, W; unset: not charged",
    )
    op_overhead_s: float = Field(ge=0, description="fixed dispatch/launch time per kernel, s")
    bandwidth_efficiency: float = Field(
        default=1.0, gt=0, le=1,
        description="fraction of the memory's peak bandwidth that all cores streaming together sustain "
        "(a STREAM-like measurement); 1.0 = peak",
    )
    weight_format: Literal["ir", "llama.cpp"] = Field(
        default="ir",
        description="storage format its kernels read integer-coded weights in: 'ir' = the codes and scales "
        "the compiler's quantization chose; 'llama.cpp' = llama.cpp's block format of the weight width "
        "(Q2_K..Q6_K, Q8_0, TQ1_0 for ternary; other widths: the codes + an f16 scale per 32 weights). "
        "A cost-model storage assumption: execution keeps the IR's quantization",
    )
    cache_bytes: int | None = Field(
        default=None, gt=0,
        description="on-chip cache a fused kernel keeps its intermediates in, bytes (unset: no fused kernels)",
    )

    @field_validator("simd_ops_per_cycle_per_core")
    @classmethod
    def _rates_positive(cls, v: PerWidth) -> PerWidth:
        if v.fp32 <= 0 or v.int8 <= 0:
            raise ValueError(f"must be greater than 0 (got fp32={v.fp32}, int8={v.int8})")
        return v

    @model_validator(mode="after")
    def _one_energy_model(self) -> CpuDevice:
        per_op = (self.energy_pj_per_op is not None, self.static_power_w is not None)
        if self.busy_power_w is None and not all(per_op):
            raise ValueError("give busy_power_w, or both energy_pj_per_op and static_power_w")
        if self.busy_power_w is not None and any(per_op):
            raise ValueError("busy_power_w replaces energy_pj_per_op and static_power_w: give one model")
        if self.uncore_power_w is not None and self.busy_power_w is not None and self.uncore_power_w > self.busy_power_w:
            raise ValueError(f"uncore_power_w ({self.uncore_power_w}) exceeds busy_power_w ({self.busy_power_w})")
        return self

    def peak_ops_per_s(self, compute_bits: int) -> float:
        """Peak arithmetic rate of all cores for operands of `compute_bits` bits, ops/s."""
        return self.cores * self.freq_ghz * 1e9 * self.simd_ops_per_cycle_per_core.at(compute_bits)

    def sustained_bytes_per_s(self, peak_gb_per_s: float) -> float:
        """Bandwidth the cores actually draw from a memory of `peak_gb_per_s`, bytes/s."""
        return peak_gb_per_s * 1e9 * self.bandwidth_efficiency

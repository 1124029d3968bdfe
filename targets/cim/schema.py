"""Schema of an analog compute-in-memory device: resistive crossbars with DACs, shared ADCs and
digital shift-add periphery, grouped in tiles (PIM-LLM / MNSIM-style)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pimc.targets.device import DeviceBase


class CimDevice(DeviceBase):
    """Crossbars holding weights as cell conductances; inputs stream in through DACs, column currents
    are digitised by shared ADCs and combined by digital shift-add logic. Weights stay resident."""

    kind: Literal["cim"] = "cim"
    # -- arrays
    crossbar_rows: int = Field(gt=0, description="word lines per crossbar (inputs summed per column)")
    crossbar_cols: int = Field(gt=1, description="bit lines per crossbar (columns)")
    cell_bits: int = Field(ge=1, le=8, description="bits stored per cell (2**cell_bits conductance levels)")
    crossbars_per_tile: int = Field(gt=0, description="crossbars per tile")
    tiles: int = Field(gt=0, description="tiles on the device; tiles x crossbars_per_tile is the capacity")
    # -- converters
    dac_bits: int = Field(ge=1, le=8, description="input bits applied per DAC step (bit-streaming)")
    dac_energy_fj: float = Field(ge=0, description="energy to drive one word line for one DAC step, fJ")
    adc_bits: int = Field(ge=1, le=16, description="ADC resolution, bits")
    adc_sample_rate_gsps: float = Field(gt=0, description="ADC sample rate, GS/s")
    adc_power_mw: float = Field(ge=0, description="ADC power while converting, mW")
    adc_area_um2: float = Field(ge=0, description="area of one ADC, um^2 (reported, not a cost)")
    cols_per_adc: int = Field(gt=0, description="columns sharing one ADC (converted one after another)")
    differential_sense: Literal["analog", "digital"] = Field(
        description="where a (G+, G-) column pair is subtracted: before the ADC (one signed conversion) or after (two)"
    )
    # -- cells
    cell_read_latency_ns: float = Field(gt=0, description="time to sense the columns for one DAC step, ns")
    cell_read_energy_fj: float = Field(ge=0, description="energy of one cell during one read step, fJ")
    cell_write_latency_ns: float = Field(gt=0, description="time to program one row of a crossbar, ns")
    cell_write_energy_pj: float = Field(ge=0, description="energy to program one cell, pJ")
    program_parallel_crossbars: int = Field(gt=0, description="crossbars programmed at the same time")
    # -- digital periphery
    clock_mhz: float = Field(gt=0, description="clock of the digital periphery (shift-add, reduction), MHz")
    digital_cycles_per_round: float = Field(
        ge=0, description="digital cycles per read/convert round (input register, shift register, mux/demux)"
    )
    digital_energy_pj_per_op: float = Field(ge=0, description="energy of one shift-add/accumulate/scale op, pJ")
    op_overhead_cycles: int = Field(ge=0, description="fixed digital cycles per op (issue, setup, completion)")
    buffer_bytes: int = Field(gt=0, description="on-chip input/output activation buffer, bytes")
    buffer_energy_pj_per_byte: float = Field(ge=0, description="activation buffer access energy, pJ/byte")
    static_power_w: float = Field(ge=0, description="periphery power while the device is busy, W")
    # -- simulator (functional) options
    adc_mode: Literal["ideal", "saturate"] = Field(
        default="ideal", description="simulator ADC: 'ideal' is exact; 'saturate' quantizes to adc_bits and clips"
    )
    adc_full_scale: float = Field(
        default=1.0, gt=0, le=1,
        description="ADC full-scale range as a fraction of the largest possible column value (saturate mode)",
    )
    noise_sigma: float = Field(
        default=0.0, ge=0, description="simulator: std of Gaussian read noise per column sample, in cell LSB units"
    )
    noise_seed: int = Field(default=0, ge=0, description="simulator: seed of the read-noise generator")

    @model_validator(mode="after")
    def _check(self) -> CimDevice:
        if self.crossbar_cols % 2:
            raise ValueError(f"crossbar_cols must be even for differential column pairs (got {self.crossbar_cols})")
        return self

    @property
    def crossbars(self) -> int:
        """Crossbars on the device."""
        return self.tiles * self.crossbars_per_tile

    @property
    def adc_latency_s(self) -> float:
        """One conversion: (bits + 2) / sample rate (MNSIM 2.0's ADC timing model)."""
        return (self.adc_bits + 2) / (self.adc_sample_rate_gsps * 1e9)

    @property
    def adc_energy_j(self) -> float:
        """One conversion: power x conversion time."""
        return self.adc_power_mw * 1e-3 * self.adc_latency_s

    @property
    def adcs_per_crossbar(self) -> int:
        return -(-self.crossbar_cols // self.cols_per_adc)

    def adc_area_mm2(self, crossbars: int) -> float:
        """Silicon area of the ADCs serving `crossbars` crossbars, mm^2."""
        return crossbars * self.adcs_per_crossbar * self.adc_area_um2 * 1e-6

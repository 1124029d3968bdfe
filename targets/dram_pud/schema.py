"""Schema of a DRAM processing-using-DRAM device: commodity DDR4 modules driven out of spec (MVDRAM).

Geometry (modules, ranks, chips, banks, subarrays, rows, columns), the fraction of columns that
compute reliably, DDR timings and IDD currents, and how the host issues commands. The host CPU that
encodes activations and aggregates results is another device of the same target, named by `host`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pimc.targets.device import DeviceBase, StrictModel


class DdrTimings(StrictModel):
    """JEDEC timing parameters of the modules, nanoseconds."""

    tck_ns: float = Field(gt=0, description="clock period")
    trcd_ns: float = Field(gt=0, description="ACT to column command")
    tras_ns: float = Field(gt=0, description="ACT to PRE (row restore)")
    trp_ns: float = Field(gt=0, description="PRE to next ACT in the bank")
    trrd_s_ns: float = Field(gt=0, description="ACT to ACT, different bank groups")
    tfaw_ns: float = Field(gt=0, description="window holding at most four ACTs per rank")

    @model_validator(mode="after")
    def _restore_after_sense(self) -> DdrTimings:
        if self.tras_ns < self.trcd_ns:
            raise ValueError(f"tras_ns ({self.tras_ns}) must be at least trcd_ns ({self.trcd_ns})")
        return self


class DdrCurrents(StrictModel):
    """Supply voltage and the IDD currents of one chip that price an activation (JEDEC IDD0/2N/3N)."""

    vdd_v: float = Field(gt=0, description="core supply voltage, V")
    idd0_ma: float = Field(gt=0, description="one-bank ACT-PRE current, mA")
    idd2n_ma: float = Field(gt=0, description="precharge standby current, mA")
    idd3n_ma: float = Field(gt=0, description="active standby current, mA")


class PudDevice(DeviceBase):
    """DDR4 modules computing GeMVs with RowCopy and multi-row-activation majority (MVDRAM)."""

    kind: Literal["dram_pud"] = "dram_pud"
    host: str = Field(description="name of the cpu device that encodes inputs, issues commands and aggregates")
    modules: int = Field(gt=0, description="DIMMs used for computation")
    channels: int = Field(gt=0, description="memory channels the modules are spread over (command buses)")
    ranks_per_module: int = Field(gt=0, description="ranks per DIMM")
    chips_per_rank: int = Field(gt=0, description="DRAM chips that share one rank's commands")
    banks_per_rank: int = Field(gt=0, description="banks per rank")
    subarrays_per_bank: int = Field(gt=0, description="subarrays per bank")
    rows_per_subarray: int = Field(gt=0, description="rows sharing one set of bitlines and sense amplifiers")
    columns_per_row: int = Field(gt=0, description="bits per rank-wide row (chips x chip row bits)")
    reliable_fraction: float = Field(gt=0, le=1, description="fraction of columns whose PUD results are reliable")
    max_inputs_per_subarray: int = Field(gt=0, description="largest number of input indices reduced in one subarray")
    timing: DdrTimings = Field(description="DDR timings")
    currents: DdrCurrents = Field(description="IDD currents and VDD of one chip")
    command_ns: float = Field(gt=0, description="host time to generate one DRAM command, per module stream, ns")
    command_energy_pj: float = Field(ge=0, description="energy to issue one command (controller + CA bus), pJ")
    act_bit_density: float = Field(ge=0, le=1, description="estimate only: fraction of activation code bits that are 1")

    @property
    def ranks(self) -> int:
        return self.modules * self.ranks_per_module

    @property
    def banks(self) -> int:
        return self.ranks * self.banks_per_rank

    @property
    def reliable_columns(self) -> int:
        """Columns of a row that the layout uses (the unreliable ones are skipped)."""
        return int(self.columns_per_row * self.reliable_fraction)

    @property
    def op_s(self) -> float:
        """One row operation (RowCopy or MAJ): the opened row(s) restore, then precharge."""
        return (self.timing.tras_ns + self.timing.trp_ns) * 1e-9

    @property
    def act_energy_j(self) -> float:
        """Energy of one ACT-PRE pair on a rank: chips x VDD x (IDD0 tRC - IDD3N tRAS - IDD2N tRP)."""
        t, c = self.timing, self.currents
        per_chip_pj = c.vdd_v * (c.idd0_ma * (t.tras_ns + t.trp_ns) - c.idd3n_ma * t.tras_ns - c.idd2n_ma * t.trp_ns)
        return self.chips_per_rank * per_chip_pj * 1e-12

    @model_validator(mode="after")
    def _geometry(self) -> PudDevice:
        if self.modules % self.channels:
            raise ValueError(f"modules ({self.modules}) must spread evenly over channels ({self.channels})")
        if self.act_energy_j <= 0:
            raise ValueError("currents: IDD0 x tRC must exceed IDD3N x tRAS + IDD2N x tRP (activation energy <= 0)")
        return self

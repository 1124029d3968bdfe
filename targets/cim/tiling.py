"""How one linear layer [N, K] sits on crossbars: the single source of truth for the cost model,
the tiling pass, the residency check and the simulator.

    slice_k        inputs per crossbar: the crossbar rows, reduced so that no crossbar column sums
                   across two weight-scale groups (an analog column sum has one scale)
    weight_slices  cells per weight magnitude: ceil(magnitude bits / cell bits)
    differential   each weight uses a (G+, G-) column pair per slice: w = w+ - w-
    dac_steps      signed input codes in two's complement: one 1-bit step for the sign bit (weight
                   -2**(a-1)) plus ceil((a-1) / dac_bits) steps for the rest, least significant first
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimc.errors import TargetError
from pimc.targets.cim.schema import CimDevice


@dataclass(frozen=True)
class CrossbarTiling:
    k: int
    n: int
    crossbar_rows: int
    crossbar_cols: int
    slice_k: int
    """Inputs (word lines) used per crossbar."""
    weight_slices: int
    """Cells per weight magnitude (bit slices of cell_bits each)."""
    mag_bits: int
    """Bits of |weight code| (1 for binary/ternary)."""
    act_bits: int
    """Bits of the signed input code (two's complement)."""
    dac_bits: int
    cell_bits: int
    adcs_per_crossbar: int
    analog_subtract: bool
    """(G+, G-) pairs subtracted as currents before the ADC: one signed conversion per pair."""

    @property
    def k_slices(self) -> int:
        return -(-self.k // self.slice_k)

    @property
    def cols_per_output(self) -> int:
        """Columns per output: a differential pair per weight slice."""
        return 2 * self.weight_slices

    @property
    def outputs_per_crossbar(self) -> int:
        return self.crossbar_cols // self.cols_per_output

    @property
    def n_slices(self) -> int:
        return -(-self.n // self.outputs_per_crossbar)

    @property
    def crossbars(self) -> int:
        return self.k_slices * self.n_slices

    @property
    def dac_steps(self) -> int:
        return 1 + -(-(self.act_bits - 1) // self.dac_bits)

    @property
    def cells(self) -> int:
        """Cells that hold weights (each is programmed once)."""
        return self.k * self.n * self.cols_per_output

    @property
    def conversions_per_output(self) -> int:
        """ADC conversions per output, K slice and DAC step: one per weight slice, two without analog subtraction."""
        return self.weight_slices * (1 if self.analog_subtract else 2)

    @property
    def conversions(self) -> int:
        """ADC conversions of one input row (token) over all crossbars of the layer."""
        return self.dac_steps * self.n * self.k_slices * self.conversions_per_output

    @property
    def column_rounds(self) -> int:
        """Read/convert rounds per DAC step: the fullest crossbar's conversions over its ADCs."""
        busiest = min(self.n, self.outputs_per_crossbar) * self.conversions_per_output
        return -(-busiest // self.adcs_per_crossbar)

    @property
    def rounds(self) -> int:
        """Read/convert rounds per input row (MNSIM's `multiple_time` with every word line driven)."""
        return self.dac_steps * self.column_rounds

    @property
    def max_column_value(self) -> int:
        """Largest |value| an ADC sees: slice_k inputs x largest DAC level x largest cell level
        (a pair subtracted in analog spans -max..max)."""
        return self.slice_k * (2**self.dac_bits - 1) * (2**self.cell_bits - 1)

    def step_chunks(self) -> list[tuple[int, int, int]]:
        """(shift, width, sign) per DAC step: bits [shift, shift+width) of the code; sign -1 for the sign bit."""
        chunks = []
        shift = 0
        while shift < self.act_bits - 1:
            width = min(self.dac_bits, self.act_bits - 1 - shift)
            chunks.append((shift, width, 1))
            shift += width
        chunks.append((self.act_bits - 1, 1, -1))
        return chunks


def magnitude_bits(weight_bits: float, has_zero_point: bool) -> int:
    """Bits of |code - zero|: 1 for binary/ternary, b-1 for symmetric int b, b with zero points."""
    if weight_bits <= 1.6:
        return 1
    bits = int(weight_bits)
    return bits if has_zero_point else max(bits - 1, 1)


def slice_rows(rows: int, k: int, group: int) -> int:
    """Inputs per crossbar: all rows, unless that would sum across two weight-scale groups."""
    if group >= k:
        return min(rows, k)
    return max(d for d in range(1, min(rows, group) + 1) if group % d == 0)


def supported(weight_bits: float, act_bits: float) -> bool:
    """Integer weight codes of at most 8 bits and integer input codes of 2..8 bits."""
    return weight_bits <= 8 and 2 <= act_bits <= 8 and act_bits == int(act_bits)


def tile_linear(
    device: CimDevice, k: int, n: int, weight_bits: float, act_bits: float, group: int | None = None, zero_point: bool = False
) -> CrossbarTiling:
    """The crossbar tiling of a linear with N outputs and K inputs on `device`."""
    if not supported(weight_bits, act_bits):
        raise TargetError(
            f"cim device '{device.name}': a linear needs integer weights of <= 8 bits and 2..8-bit integer "
            f"inputs, got weight_bits={weight_bits:g}, act_bits={act_bits:g}"
        )
    mag = magnitude_bits(weight_bits, zero_point)
    slices = math.ceil(mag / device.cell_bits)
    if 2 * slices > device.crossbar_cols:
        raise TargetError(
            f"cim device '{device.name}': a {mag}-bit weight magnitude needs {2 * slices} columns, "
            f"the crossbar has {device.crossbar_cols}"
        )
    return CrossbarTiling(
        k=k,
        n=n,
        crossbar_rows=device.crossbar_rows,
        crossbar_cols=device.crossbar_cols,
        slice_k=slice_rows(device.crossbar_rows, k, group or k),
        weight_slices=slices,
        mag_bits=mag,
        act_bits=int(act_bits),
        dac_bits=device.dac_bits,
        cell_bits=device.cell_bits,
        adcs_per_crossbar=device.adcs_per_crossbar,
        analog_subtract=device.differential_sense == "analog",
    )

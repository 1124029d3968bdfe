"""The `cim` dialect: linear layers executed on resistive crossbars that hold their weights.

- `cim.linear`: y = x · wᵀ (+ bias) with integer weight codes resident on `crossbars` crossbars
  starting at `first_crossbar` of the device (allocated once by `cim-residency`, shared by every
  function and every token), inputs quantized per row to `aquant` codes and bit-streamed through
  `dac_bits` DACs, column currents digitised by `adc_bits` ADCs. The crossbar layout (K slices of
  `slice_k` rows, `weight_slices` cell slices per weight, (G+, G-) column pairs) and the converter
  settings are attributes; the op verifies its layout against the crossbar geometry it carries.

Every `cim.linear` carries the `Scheduled` placement. Semantics live in `cim_semantics.py`; the
module attribute `cim.residency` records, per device, the crossbars used and available and the
one-time cost of programming the weights.
"""

from __future__ import annotations

from xdsl.dialects.builtin import I64, FloatAttr, IntegerAttr, StringAttr, TensorType
from xdsl.ir import Dialect
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm import QuantAttr, tensor_shape
from pimc.dialects.sched import ScheduledOp

RESIDENCY_ATTR = "cim.residency"
"""Module attribute: {device: {crossbars_used, crossbars_available, weights, program_latency_s, program_energy_j}}."""


def _int(attr: IntegerAttr) -> int:
    return attr.value.data


def magnitude_bits(quant: QuantAttr) -> int:
    """Bits of |code - zero| for a weight format: 1 for binary/ternary, b-1 symmetric, b with zero points."""
    fmt = quant.format.data
    if fmt in ("binary", "ternary"):
        return 1
    bits = int(quant.code_bits)
    return bits if not quant.symmetric.data else max(bits - 1, 1)


@irdl_op_definition
class LinearOp(ScheduledOp):
    """y = x [..., K] · w [N, K]ᵀ (+ bias) on resident crossbars (see the module docstring)."""

    name = "cim.linear"

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)

    wquant = prop_def(QuantAttr)
    aquant = prop_def(QuantAttr)
    crossbar_rows = prop_def(IntegerAttr[I64])
    crossbar_cols = prop_def(IntegerAttr[I64])
    cell_bits = prop_def(IntegerAttr[I64])
    slice_k = prop_def(IntegerAttr[I64])
    weight_slices = prop_def(IntegerAttr[I64])
    first_crossbar = prop_def(IntegerAttr[I64])
    crossbars = prop_def(IntegerAttr[I64])
    dac_bits = prop_def(IntegerAttr[I64])
    adc_bits = prop_def(IntegerAttr[I64])
    analog_subtract = prop_def(IntegerAttr[I64])
    adc_mode = prop_def(StringAttr)
    adc_full_scale = prop_def(FloatAttr)
    noise_sigma = prop_def(FloatAttr)
    noise_seed = prop_def(IntegerAttr[I64])

    assembly_format = "$input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"

    @property
    def k_slices(self) -> int:
        k = tensor_shape(self.weight)[1]
        return -(-k // _int(self.slice_k))

    @property
    def n_slices(self) -> int:
        n = tensor_shape(self.weight)[0]
        return -(-n // (_int(self.crossbar_cols) // (2 * _int(self.weight_slices))))

    def verify_(self) -> None:
        def fail(message: str) -> None:
            raise VerifyException(f"cim.linear: {message}")

        if len(tensor_shape(self.weight)) != 2:
            fail(f"weight must be [N, K], got {list(tensor_shape(self.weight))}")
        n, k = tensor_shape(self.weight)
        xs = tensor_shape(self.input)
        if not xs or xs[-1] != k:
            fail(f"input inner dimension {xs[-1:] or '?'} does not match weight [N={n}, K={k}]")
        if tensor_shape(self.result) != (*xs[:-1], n):
            fail(f"result shape {list(tensor_shape(self.result))} must be {[*xs[:-1], n]}")
        if self.bias is not None and tensor_shape(self.bias) != (n,):
            fail(f"bias shape {list(tensor_shape(self.bias))} must be [{n}]")
        wfmt, afmt = self.wquant.format.data, self.aquant.format.data
        if not self.wquant.integer_codes:
            fail(f"weights must be integer codes to sit in crossbar cells, got {wfmt}")
        if not afmt.startswith("int") or self.aquant.scale.data == "per_group" or not self.aquant.symmetric.data:
            fail(f"inputs must be symmetric integer codes with one scale per row or tensor, got {self.aquant}")
        rows, cols, cell = _int(self.crossbar_rows), _int(self.crossbar_cols), _int(self.cell_bits)
        slice_k, slices = _int(self.slice_k), _int(self.weight_slices)
        if not 0 < slice_k <= rows:
            fail(f"slice_k {slice_k} must be in (0, {rows}] (the crossbar rows)")
        group = self.wquant.group.data if self.wquant.scale.data == "per_group" else k
        if group < k and group % slice_k:
            fail(f"a {slice_k}-row K slice would sum across weight-scale groups of {group}")
        if slices * cell < magnitude_bits(self.wquant):
            fail(f"{slices} slices of {cell}-bit cells cannot hold {magnitude_bits(self.wquant)}-bit weight magnitudes")
        if 2 * slices > cols:
            fail(f"{slices} differential cell slices need {2 * slices} columns, the crossbar has {cols}")
        expected = self.k_slices * self.n_slices
        if _int(self.crossbars) != expected:
            fail(f"crossbars = {_int(self.crossbars)}, but {self.k_slices} K slices x {self.n_slices} N slices = {expected}")
        if _int(self.first_crossbar) < 0:
            fail("first_crossbar must be non-negative")
        if self.adc_mode.data not in ("ideal", "saturate"):
            fail(f"adc_mode must be 'ideal' or 'saturate', got '{self.adc_mode.data}'")
        if _int(self.dac_bits) < 1 or _int(self.adc_bits) < 1 or _int(self.analog_subtract) not in (0, 1):
            fail("dac_bits and adc_bits must be positive, analog_subtract 0 or 1")


CIM = Dialect("cim", [LinearOp], [])

"""`pud-quantize`: give every linear the integer codes a DRAM-PUD device computes with, unless it has
them already. Float weights (no `wquant`, f16/bf16, or a ggml block format such as a GGUF's Q4_1,
whose values are not integer codes times group scales) become 1..8-bit codes rounded to nearest per
group of `group` inputs, symmetric or with zero points; float inputs become `abits`-bit codes with
one scale per token row. Linears already stored as integer codes keep them (their groups and zero
points too), so they are never quantized twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.errors import PimcError
from pimc.passes.quantize import activation_quant, quant_for_bits


def pud_weight_quant(bits: float, group: int, symmetric: bool) -> llm.QuantAttr:
    """The storage for `bits` (1 binary, 1.58 ternary, 2..8 integer) a PUD device can compute with."""
    quant = quant_for_bits(bits, group)
    if quant is None or quant.format.data in llm.FLOAT_FORMATS:
        raise PimcError(f"pud-quantize: {bits:g}-bit weights are not integer codes (expected 1, 1.58 or 2..8)")
    if not symmetric:
        if not quant.format.data.startswith("int"):
            raise PimcError(f"pud-quantize: {quant.format.data} codes have no zero points (use symmetric=true)")
        quant = llm.QuantAttr(quant.format.data, group, symmetric=False)
    return quant


@dataclass(frozen=True)
class PudQuantizePass(ModulePass):
    name = "pud-quantize"

    bits: int | float = 4
    group: int = 128
    symmetric: bool = True
    abits: int = 8

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        wquant = pud_weight_quant(self.bits, self.group, self.symmetric)
        aquant = activation_quant(self.abits)
        if aquant is None:
            raise PimcError(f"pud-quantize: abits must be 2..8, got {self.abits}")
        for linear in op.walk():
            if not isinstance(linear, llm.LinearOp):
                continue
            current = linear.wquant
            if current is None or not current.integer_codes:
                linear.properties["wquant"] = wquant
            if linear.aquant is None:
                linear.properties["aquant"] = aquant

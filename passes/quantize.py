"""`quantize`: store linear weights low-bit (round-to-nearest, per group along the input dimension).

Sets `wquant` on every `llm.linear` (or only those whose weight name contains `only`). The reference
semantics then compute with the dequantized grid values, so the quantized model's meaning is exactly
what the attribute says; the cost models see the smaller weight bytes and narrower operands.
"""

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from pimc.dialects import llm
from pimc.errors import PimcError


def quant_for_bits(bits: float, group: int) -> llm.QuantAttr | None:
    """The storage a `--wbits B` asks for: 1 binary, 1.58 ternary, 2..8 intB, 16 f16, 32 none."""
    if bits == 32:
        return None
    if bits == 16:
        return llm.QuantAttr("f16", group)
    if abs(bits - 1.58) < 1e-9:
        return llm.QuantAttr("ternary", group)
    if bits == 1:
        return llm.QuantAttr("binary", group)
    if bits == int(bits) and 2 <= bits <= 8:
        return llm.QuantAttr(f"int{int(bits)}", group)
    raise PimcError(f"unsupported weight bits {bits:g} (expected 1, 1.58, 2..8, 16 or 32)")


class QuantizeLinear(RewritePattern):
    def __init__(self, quant: llm.QuantAttr, only: str):
        self.quant, self.only = quant, only

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.LinearOp, rewriter: PatternRewriter) -> None:
        if op.wquant == self.quant:
            return
        owner = op.weight.owner
        if self.only and not (isinstance(owner, llm.WeightOp) and self.only in owner.properties["name"].data):
            return
        op.properties["wquant"] = self.quant
        rewriter.handle_operation_modification(op)


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    name = "quantize"

    bits: int | float = 4
    group: int = 32
    only: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        quant = quant_for_bits(self.bits, self.group)
        if quant is None:
            return
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([QuantizeLinear(quant, self.only)], dce_enabled=False))
        walker.rewrite_module(op)

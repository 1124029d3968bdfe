"""`quantize`: store linear weights low-bit (round-to-nearest, per group along the input dimension)
and, with `abits`, quantize their inputs dynamically per token.

Sets `wquant` (and `aquant`) on every `llm.linear` (or only those whose weight name contains `only`). The reference
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


def activation_quant(bits: float) -> llm.QuantAttr | None:
    """Dynamic symmetric per-token quantization for `--abits B` (2..8); 32 keeps float inputs."""
    if bits == 32:
        return None
    if bits == int(bits) and 2 <= bits <= 8:
        return llm.QuantAttr(f"int{int(bits)}", 1, scale="per_channel")
    raise PimcError(f"unsupported activation bits {bits:g} (expected 2..8 or 32)")


class QuantizeLinear(RewritePattern):
    def __init__(self, wquant: llm.QuantAttr | None, aquant: llm.QuantAttr | None, only: str):
        self.quants = {"wquant": wquant, "aquant": aquant}
        self.only = only

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.LinearOp, rewriter: PatternRewriter) -> None:
        owner = op.weight.owner
        if self.only and not (isinstance(owner, llm.WeightOp) and self.only in owner.properties["name"].data):
            return
        changes = {k: q for k, q in self.quants.items() if q is not None and op.properties.get(k) != q}
        if changes:
            op.properties.update(changes)
            rewriter.handle_operation_modification(op)


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    name = "quantize"

    bits: int | float = 4
    group: int = 32
    abits: int | float = 32
    only: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        wquant, aquant = quant_for_bits(self.bits, self.group), activation_quant(self.abits)
        if wquant is None and aquant is None:
            return
        pattern = QuantizeLinear(wquant, aquant, self.only)
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([pattern], dce_enabled=False))
        walker.rewrite_module(op)

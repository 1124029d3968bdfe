"""`convert-llm-to-systolic`: every `llm` op mapped to a systolic array becomes `systolic` ops.

Attention (over the KV cache during decode) → `systolic.attention`; a linear → `systolic.gemm`
(its weights streamed from memory); anything else → `systolic.vector` on the vector unit. The array
ops carry the array geometry of their device (from the target: `target` option or the one the
compile pipeline records on the module).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from pimc.dialects import llm, systolic
from pimc.dialects.llm import i64_attr
from pimc.dialects.sched import sched_properties
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.passes.module_target import module_target, placed_on
from pimc.targets import Target
from pimc.targets.systolic import SystolicDevice

ATTENTION_PROPS = ("heads", "kv_heads", "head_dim", "scale", "causal", "window")


class LowerToArray(RewritePattern):
    def __init__(self, target: Target):
        self.target = target

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, llm.LlmOp) or isinstance(op, llm.WeightOp):
            return
        device_name = placed_on(op, "systolic")
        if device_name is None:
            return
        device = self.target.device(device_name)
        assert isinstance(device, SystolicDevice)
        place = sched_properties(op.attributes[SCHED_ATTR])
        array = {
            "rows": i64_attr(device.rows),
            "cols": i64_attr(device.cols),
            "operand_bits": i64_attr(device.operand_bits),
        }
        types = [r.type for r in op.results]
        if isinstance(op, llm.AttentionOp):
            props = {k: op.properties[k] for k in ATTENTION_PROPS if k in op.properties}
            new = systolic.AttentionOp.create(operands=list(op.operands), result_types=types, properties={**props, **array, **place})
        elif isinstance(op, llm.LinearOp):
            quants = {k: op.properties[k] for k in ("wquant", "aquant") if k in op.properties}
            new = systolic.GemmOp.create(operands=list(op.operands), result_types=types, properties={**quants, **array, **place})
        else:
            new = systolic.VectorOp.create(
                operands=list(op.operands),
                result_types=types,
                properties={"kernel": StringAttr(op.name), "params": DictionaryAttr(dict(op.properties)), **place},
            )
        rewriter.replace(op, new)


@dataclass(frozen=True)
class ConvertLlmToSystolicPass(ModulePass):
    name = "convert-llm-to-systolic"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        walker = PatternRewriteWalker(
            GreedyRewritePatternApplier([LowerToArray(target)], dce_enabled=False), apply_recursively=False
        )
        walker.rewrite_module(op)

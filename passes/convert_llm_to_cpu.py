"""`convert-llm-to-cpu`: every `llm` op mapped to a CPU device becomes a `cpu.kernel` call (an
`llm.fused` chain becomes one `cpu.fused` kernel holding its body).

The kernel carries the op's name and properties (its meaning) and the mapper's placement, slot,
start time and cost. Weights stay `llm.weight` references: data, not computation.
"""

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

from pimc.dialects import cpu, llm
from pimc.dialects.sched import sched_properties
from pimc.errors import PimcError
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.passes.module_target import in_fused_body


class LowerMappedOp(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, llm.LlmOp) or isinstance(op, llm.WeightOp) or in_fused_body(op):
            return
        sched = op.attributes.get(SCHED_ATTR)
        if not isinstance(sched, DictionaryAttr):
            raise PimcError(f"convert-llm-to-cpu: {op.name} has no placement; run the `map` pass first")
        place = sched.data
        if place["kind"].data != "cpu":
            return
        if isinstance(op, llm.FusedOp):  # one kernel for the chain: its body moves into it
            fused = cpu.FusedOp.create(
                operands=list(op.operands), result_types=[op.result.type], regions=[op.detach_region(op.body)],
                properties={"pattern": op.pattern, **sched_properties(sched)},
            )
            rewriter.replace(op, fused)
            return
        kernel = cpu.KernelOp.create(
            operands=list(op.operands),
            result_types=[r.type for r in op.results],
            properties={
                "kernel": StringAttr(op.name),
                "params": DictionaryAttr(dict(op.properties)),
                **sched_properties(sched),
            },
        )
        rewriter.replace(op, kernel)


@dataclass(frozen=True)
class ConvertLlmToCpuPass(ModulePass):
    name = "convert-llm-to-cpu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([LowerMappedOp()], dce_enabled=False), apply_recursively=False).rewrite_module(op)

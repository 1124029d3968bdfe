"""`convert-llm-to-pud`: every `llm.linear` mapped to a DRAM-PUD device becomes pud.place (once per
weight), pud.encode, pud.gemv and pud.aggregate. The mapper's placement is split by phase (host
encode, in-DRAM GeMV, host aggregation) with each phase's cost from the device's cost model, so the
three ops together take exactly the slot the mapper scheduled. `lower-pud` runs `pud-layout` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType, f32, i32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from pimc.dialects import llm, pud
from pimc.dialects.llm import f64_attr, i64_attr, tensor_shape
from pimc.dialects.llm_work import op_work
from pimc.errors import PimcError
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.passes.module_target import module_target, placed_on
from pimc.passes.pud_layout import LAYOUT_ATTR, PudLayoutPass
from pimc.targets import Target
from pimc.targets.cost import Cost
from pimc.targets.dram_pud import breakdown

REL_TOL = 1e-9


def _phase(sched: DictionaryAttr, host: str, start: float, cost: Cost) -> dict:
    return {
        "host": StringAttr(host),
        "device": sched.data["device"],
        "slot": sched.data["slot"],
        "start_s": f64_attr(start),
        "latency_s": f64_attr(cost.latency_s),
        "energy_j": f64_attr(cost.energy_j),
        "offchip_bytes": f64_attr(cost.offchip_bytes),
    }


class LowerLinear(RewritePattern):
    def __init__(self, target: Target):
        self.target = target

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.LinearOp, rewriter: PatternRewriter) -> None:
        name = placed_on(op, "dram_pud")
        if name is None:
            return
        layout = op.attributes.get(LAYOUT_ATTR)
        if not isinstance(layout, pud.LayoutAttr):
            raise PimcError(f"convert-llm-to-pud: a linear on '{name}' has no {LAYOUT_ATTR}; run pud-layout first")
        if op.wquant is None or op.aquant is None:
            raise PimcError(f"convert-llm-to-pud: a linear on '{name}' needs integer wquant and aquant")
        device = self.target.device(name)
        phases = breakdown(self.target, device, op_work(op))
        sched = op.attributes[SCHED_ATTR]
        assert isinstance(sched, DictionaryAttr)
        start = sched.data["start_s"].value.data
        mapped = sched.data["latency_s"].value.data
        total = phases.total.latency_s
        if abs(total - mapped) > REL_TOL * max(mapped, 1e-12):
            raise PimcError(f"convert-llm-to-pud: phases sum to {total:.6g} s, the mapper scheduled {mapped:.6g} s")

        place = self._place(op.weight, op.wquant, layout, rewriter, op)
        n, k = tensor_shape(op.weight)
        rows = math.prod(tensor_shape(op.input)[:-1])
        groups = phases.geometry.qgroups
        host = device.host
        encode = pud.EncodeOp.create(
            operands=[op.input],
            result_types=[TensorType(i32, [rows, k]), TensorType(f32, [rows])],
            properties={"aquant": op.aquant, **_phase(sched, host, start, phases.encode)},
        )
        t1 = start + phases.encode.latency_s
        gemv = pud.GemvOp.create(
            operands=[encode.codes, place.result],
            result_types=[TensorType(i64, [rows, groups, n])],
            properties={
                "act_bits": i64_attr(int(op.aquant.code_bits)),
                "row_ops": i64_attr(rows * phases.counts.ops),
                **_phase(sched, host, t1, phases.dram),
            },
        )
        t2 = t1 + phases.dram.latency_s
        operands = [gemv.result, encode.codes, encode.scales, place.result] + ([op.bias] if op.bias is not None else [])
        aggregate = pud.AggregateOp.create(
            operands=operands,
            result_types=[op.result.type],
            properties=_phase(sched, host, t2, phases.aggregate),
        )
        rewriter.insert([encode, gemv], InsertPoint.before(op))
        rewriter.replace(op, aggregate)

    @staticmethod
    def _place(weight: SSAValue, wquant: llm.QuantAttr, layout: pud.LayoutAttr, rewriter: PatternRewriter,
               before: Operation) -> pud.PlaceOp:
        for use in weight.uses:
            user = use.operation
            if isinstance(user, pud.PlaceOp) and user.layout == layout and user.wquant == wquant:
                return user
        place = pud.PlaceOp.create(
            operands=[weight], result_types=[weight.type], properties={"wquant": wquant, "layout": layout}
        )
        rewriter.insert(place, InsertPoint.after(weight.owner) if isinstance(weight.owner, Operation) else InsertPoint.before(before))
        return place


@dataclass(frozen=True)
class ConvertLlmToPudPass(ModulePass):
    name = "convert-llm-to-pud"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([LowerLinear(target)], dce_enabled=False), apply_recursively=False)
        walker.rewrite_module(op)


@dataclass(frozen=True)
class LowerPudPass(ModulePass):
    """pud-layout, then convert-llm-to-pud."""

    name = "lower-pud"

    target: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PudLayoutPass(self.target).apply(ctx, op)
        ConvertLlmToPudPass(self.target).apply(ctx, op)


__all__ = ["ConvertLlmToPudPass", "LowerPudPass"]

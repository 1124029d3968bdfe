"""`convert-llm-to-fpga`: every `llm` op mapped to an FPGA device becomes `fpga` dialect ops.

- `llm.linear` → `fpga.gemm` with its tile loop as attributes (after an `fpga.unpack` of the weight
  when `pack-weights` packed it);
- `llm.attention` → `fpga.tphs` when the `tphs` pass chose TPHS, else `fpga.scores` → `fpga.softmax`
  → `fpga.pv` (the GEMM form), the mapper's placement split over the three by their phase costs;
- anything else → `fpga.kernel` on the vector unit.

Device numbers come from the target the compile pipeline records on the module, or from the `target`
option when the pass runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType, f32
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from pimc.dialects import fpga, llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.dialects.llm_work import op_work
from pimc.dialects.sched import sched_properties
from pimc.errors import PimcError
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.passes.module_target import in_fused_body, module_target
from pimc.targets import Target
from pimc.targets.fpga.cost import (
    attention_gemm_phases,
    gemm_tiles,
    op_phases,
    phase_cost,
    tphs_onchip_bytes,
    tphs_stages,
)

ATTENTION_PROPS = ("heads", "kv_heads", "head_dim", "scale", "causal", "window")


def split_placement(sched: DictionaryAttr, costs: list) -> list[dict]:
    """The mapper's placement of one op cut into consecutive phases; the last takes the remainder so
    the phases add up exactly to what the mapper scheduled."""
    base = sched_properties(sched)
    start = base["start_s"].value.data
    totals = {k: base[k].value.data for k in ("latency_s", "energy_j", "offchip_bytes")}
    used = dict.fromkeys(totals, 0.0)
    out = []
    for i, cost in enumerate(costs):
        last = i == len(costs) - 1
        part = {
            "latency_s": totals["latency_s"] - used["latency_s"] if last else cost.latency_s,
            "energy_j": totals["energy_j"] - used["energy_j"] if last else cost.energy_j,
            "offchip_bytes": totals["offchip_bytes"] - used["offchip_bytes"] if last else cost.offchip_bytes,
        }
        props = dict(base)
        props.update({k: f64_attr(max(0.0, v)) for k, v in part.items()})
        props["start_s"] = f64_attr(start + used["latency_s"])
        for k in used:
            used[k] += part[k]
        out.append(props)
    return out


class LowerMappedOp(RewritePattern):
    def __init__(self, target: Target):
        self.target = target

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, llm.LlmOp) or isinstance(op, llm.WeightOp) or in_fused_body(op):
            return
        sched = op.attributes.get(SCHED_ATTR)
        if not isinstance(sched, DictionaryAttr):
            raise PimcError(f"convert-llm-to-fpga: {op.name} has no placement; run the `map` pass first")
        if sched.data["kind"].data != "fpga":
            return
        device = self.target.device(sched.data["device"].data)
        work = op_work(op)
        if isinstance(op, llm.LinearOp):
            self.linear(op, device, work, sched, rewriter)
        elif isinstance(op, llm.AttentionOp):
            self.attention(op, device, work, sched, rewriter)
        else:
            kernel = fpga.KernelOp.create(
                operands=list(op.operands),
                result_types=[r.type for r in op.results],
                properties={
                    "kernel": StringAttr(op.name),
                    "params": DictionaryAttr(dict(op.properties)),
                    "cycles": i64_attr(sum(p.cycles for p in op_phases(device, work))),
                    **sched_properties(sched),
                },
            )
            rewriter.replace(op, kernel)

    def linear(self, op: llm.LinearOp, device, work, sched, rewriter: PatternRewriter) -> None:
        if op.wquant is None or op.aquant is None:
            raise PimcError(f"convert-llm-to-fpga: {op.name} needs integer weights and inputs (wquant and aquant)")
        new_ops: list[Operation] = []
        weight = op.weight
        packing = op.attributes.get("fpga.packing")
        if isinstance(packing, DictionaryAttr):
            unpack = fpga.UnpackOp.create(
                operands=[weight], result_types=[weight.type], properties={"wquant": op.wquant, **packing.data}
            )
            new_ops.append(unpack)
            weight = unpack.result
        m, n, k = work.dims["rows"], work.dims["n"], work.dims["k"]
        tiles = gemm_tiles(device, m, n, k, work.weight_bits)
        gemm = fpga.GemmOp.create(
            operands=[op.input, weight] + ([op.bias] if op.bias is not None else []),
            result_types=[op.result.type],
            properties={
                "wquant": op.wquant,
                "aquant": op.aquant,
                "tile_m": i64_attr(tiles.tile_m),
                "tile_n": i64_attr(tiles.tile_n),
                "tile_k": i64_attr(tiles.tile_k),
                "cycles": i64_attr(op_phases(device, work)[0].cycles),
                "buffer_bytes": i64_attr(tiles.buffer_bytes),
                "onchip_capacity": i64_attr(device.onchip_bytes),
                **sched_properties(sched),
            },
        )
        rewriter.replace(op, [*new_ops, gemm])

    def attention(self, op: llm.AttentionOp, device, work, sched, rewriter: PatternRewriter) -> None:
        common = {name: op.properties[name] for name in ATTENTION_PROPS if name in op.properties}
        if work.hints.get("tphs"):
            stages = tphs_stages(device, work)
            tphs = fpga.TphsOp.create(
                operands=[op.query, op.key, op.value, op.positions],
                result_types=[op.result.type],
                properties={
                    **common,
                    "qk_cycles": i64_attr(stages.qk),
                    "softmax_cycles": i64_attr(stages.softmax),
                    "sv_cycles": i64_attr(stages.sv),
                    "onchip_need": i64_attr(tphs_onchip_bytes(device, work)),
                    "onchip_capacity": i64_attr(device.onchip_bytes),
                    **sched_properties(sched),
                },
            )
            rewriter.replace(op, tphs)
            return
        memory = self.target.memory_of(device)
        phases = attention_gemm_phases(device, work)
        placements = split_placement(sched, [phase_cost(device, memory, p) for p in phases])
        s, h, _ = op.query.type.get_shape()
        t = op.key.type.get_shape()[0]
        scores_type = TensorType(f32, [h, s, t])
        scores = fpga.ScoresOp.create(
            operands=[op.query, op.key, op.positions], result_types=[scores_type],
            properties={**common, "cycles": i64_attr(phases[0].cycles), **placements[0]},
        )
        softmax = fpga.SoftmaxOp.create(
            operands=[scores.result], result_types=[scores_type],
            properties={"cycles": i64_attr(phases[1].cycles), **placements[1]},
        )
        pv = fpga.PvOp.create(
            operands=[softmax.result, op.value], result_types=[op.result.type],
            properties={**common, "cycles": i64_attr(phases[2].cycles), **placements[2]},
        )
        rewriter.replace(op, [scores, softmax, pv])


@dataclass(frozen=True)
class ConvertLlmToFpgaPass(ModulePass):
    name = "convert-llm-to-fpga"

    target: str = ""
    """Target preset or .toml, when the pass runs outside `pimc compile`."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = LowerMappedOp(module_target(op, self.target, self.name))
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([pattern], dce_enabled=False), apply_recursively=False)
        walker.rewrite_module(op)

"""`convert-llm-to-fpga`: every `llm` op mapped to an FPGA device becomes `fpga` dialect ops.

- `llm.linear` → `fpga.gemm` with its tile loop as attributes (after an `fpga.unpack` of the weight
  when `pack-weights` packed it);
- `llm.attention` → `fpga.tphs` when the `tphs` pass chose TPHS, else `fpga.scores` → `fpga.softmax`
  → `fpga.pv` (the GEMM form), the mapper's placement split over the three by their phase costs;
- the `tphs` pass's fused `tphs_attention` chain (Q projection → reshape → rope → attention) →
  `fpga.tphs_q`;
- anything else → `fpga.kernel` on the vector unit.

Every compute op is wrapped in the DMA that its cost phase prices: an `fpga.dma_in` per loaded operand
group (weight with its bias, input, query, key, value, scores, probs) and an `fpga.dma_out` of its result,
with the bytes and seconds of the phase's transfers, so the program shows what goes off chip — in the
GEMM form the scores and probabilities go out and come back between the three passes.

Device numbers come from the target the compile pipeline records on the module, or from the `target`
option when the pass runs alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType, UnitAttr, f32
from xdsl.ir import Operation, SSAValue
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
    Phase,
    Transfer,
    attention_gemm_phases,
    dma_seconds,
    fused_q,
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


class Dma:
    """Builds the `fpga.dma_in` / `fpga.dma_out` ops of one phase from its transfers."""

    def __init__(self, device, memory):
        self.device, self.memory = device, memory

    def op(self, cls, transfer: Transfer, values: list[SSAValue]) -> fpga.FpgaOp:
        props = {
            "what": StringAttr(transfer.what),
            "bytes": f64_attr(float(transfer.nbytes)),
            "seconds": f64_attr(dma_seconds(self.device, self.memory, transfer.nbytes)),
            "tile_bytes": i64_attr(math.ceil(transfer.tile_bytes)),
            "onchip_capacity": i64_attr(self.device.onchip_bytes),
        }
        if self.device.dma_engines >= 2:
            props["double_buffered"] = UnitAttr()
        return cls.create(operands=values, result_types=[v.type for v in values], properties=props)

    def loads(self, phase: Phase, sources: dict[str, list[SSAValue]]) -> tuple[list[Operation], dict[SSAValue, SSAValue]]:
        """A `dma_in` per load of `phase` over the values `sources` names for it; and each value's on-chip copy."""
        ops, onchip = [], {}
        for transfer in phase.loads:
            values = sources[transfer.what]
            dma = self.op(fpga.DmaInOp, transfer, values)
            ops.append(dma)
            onchip.update(zip(values, dma.results))
        return ops, onchip

    def stores(self, phase: Phase, value: SSAValue) -> tuple[list[Operation], SSAValue]:
        """The `dma_out` of `phase`'s result (at most one store per phase); the value as it is off chip."""
        ops = [self.op(fpga.DmaOutOp, t, [value]) for t in phase.stores]
        for dma in ops:
            value = dma.results[0]
        return ops, value


def _load_sources(op: Operation) -> dict[str, list[SSAValue]]:
    """The operands behind each load the cost model names: a matmul's two activations, else
    weights and inputs."""
    if isinstance(op, llm.MatmulOp):
        return {"lhs": [op.lhs], "rhs": [op.rhs]}
    return _weights_and_inputs(op.operands)


def _weights_and_inputs(operands) -> dict[str, list[SSAValue]]:
    return {"weight": [v for v in operands if isinstance(v.owner, llm.WeightOp)],
            "input": [v for v in operands if not isinstance(v.owner, llm.WeightOp)]}


def _inner(fused: llm.FusedOp, cls):
    return next(op for op in fused.body.block.ops if isinstance(op, cls))


def _outer(fused: llm.FusedOp, value: SSAValue) -> SSAValue:
    """The fused op's operand behind a block argument of its body."""
    return fused.inputs[fused.body.block.args.index(value)]


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
        dma = Dma(device, self.target.memory_of(device))
        work = op_work(op)
        if isinstance(op, llm.LinearOp):
            self.linear(op, device, work, sched, dma, rewriter)
        elif isinstance(op, llm.AttentionOp):
            self.attention(op, device, work, sched, dma, rewriter)
        elif isinstance(op, llm.FusedOp) and fused_q(work):
            self.tphs_q(op, device, work, sched, dma, rewriter)
        elif isinstance(op, llm.FusedOp):
            raise PimcError(f"convert-llm-to-fpga: no FPGA kernel for the fused '{op.pattern.data}' chain")
        else:
            (phase,) = op_phases(device, work)
            loads, onchip = dma.loads(phase, _load_sources(op))
            kernel = fpga.KernelOp.create(
                operands=[onchip.get(v, v) for v in op.operands],
                result_types=[r.type for r in op.results],
                properties={
                    "kernel": StringAttr(op.name),
                    "params": DictionaryAttr(dict(op.properties)),
                    "cycles": i64_attr(phase.cycles),
                    **sched_properties(sched),
                },
            )
            stores, result = dma.stores(phase, kernel.result)
            rewriter.replace(op, [*loads, kernel, *stores], [result])

    def linear(self, op: llm.LinearOp, device, work, sched, dma: Dma, rewriter: PatternRewriter) -> None:
        if op.wquant is None or op.aquant is None:
            raise PimcError(f"convert-llm-to-fpga: {op.name} needs integer weights and inputs (wquant and aquant)")
        (phase,) = op_phases(device, work)
        weights = [op.weight] + ([op.bias] if op.bias is not None else [])  # the bias moves with the weight
        loads, onchip = dma.loads(phase, {"weight": weights, "input": [op.input]})
        new_ops: list[Operation] = [*loads]
        weight = onchip[op.weight]
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
            operands=[onchip[op.input], weight] + ([onchip[op.bias]] if op.bias is not None else []),
            result_types=[op.result.type],
            properties={
                "wquant": op.wquant,
                "aquant": op.aquant,
                "tile_m": i64_attr(tiles.tile_m),
                "tile_n": i64_attr(tiles.tile_n),
                "tile_k": i64_attr(tiles.tile_k),
                "cycles": i64_attr(phase.cycles),
                "buffer_bytes": i64_attr(tiles.buffer_bytes),
                "onchip_capacity": i64_attr(device.onchip_bytes),
                **sched_properties(sched),
            },
        )
        stores, result = dma.stores(phase, gemm.result)
        rewriter.replace(op, [*new_ops, gemm, *stores], [result])

    def tphs_q(self, op: llm.FusedOp, device, work, sched, dma: Dma, rewriter: PatternRewriter) -> None:
        """The `tphs` pass's fused chain linear(q) → reshape (→ rope) → attention as one `fpga.tphs_q`."""
        linear, attention = _inner(op, llm.LinearOp), _inner(op, llm.AttentionOp)
        rope = next((o for o in op.body.block.ops if isinstance(o, llm.RopeOp)), None)
        if linear.wquant is None or linear.aquant is None:
            raise PimcError("convert-llm-to-fpga: the fused Q projection needs integer weights and inputs")
        outer = {name: _outer(op, value) for name, value in (
            ("input", linear.input), ("weight", linear.weight), ("key", attention.key),
            ("value", attention.value), ("positions", attention.positions))}
        bias = _outer(op, linear.bias) if linear.bias is not None else None
        (phase,) = op_phases(device, work)
        loads, onchip = dma.loads(phase, {
            "weight": [outer["weight"]] + ([bias] if bias is not None else []), "input": [outer["input"]],
            "key": [outer["key"]], "value": [outer["value"]]})
        new_ops: list[Operation] = [*loads]
        weight = onchip[outer["weight"]]
        packing = linear.attributes.get("fpga.packing")
        if isinstance(packing, DictionaryAttr):
            unpack = fpga.UnpackOp.create(
                operands=[weight], result_types=[weight.type], properties={"wquant": linear.wquant, **packing.data})
            new_ops.append(unpack)
            weight = unpack.result
        stages = tphs_stages(device, work)
        props = {
            **{name: attention.properties[name] for name in ATTENTION_PROPS if name in attention.properties},
            "wquant": linear.wquant, "aquant": linear.aquant,
            "q_cycles": i64_attr(stages.q), "rope_cycles": i64_attr(stages.rope), "qk_cycles": i64_attr(stages.qk),
            "softmax_cycles": i64_attr(stages.softmax), "sv_cycles": i64_attr(stages.sv),
            "onchip_need": i64_attr(tphs_onchip_bytes(device, work)),
            "onchip_capacity": i64_attr(device.onchip_bytes),
            **sched_properties(sched),
        }
        if rope is not None:
            props["rope"] = DictionaryAttr(dict(rope.properties))
        operands = [onchip[outer["input"]], weight, onchip[outer["key"]], onchip[outer["value"]], outer["positions"]]
        tphs = fpga.TphsQOp.create(operands=operands + ([onchip[bias]] if bias is not None else []),
                                   result_types=[op.result.type], properties=props)
        stores, result = dma.stores(phase, tphs.result)
        rewriter.replace(op, [*new_ops, tphs, *stores], [result])

    def attention(self, op: llm.AttentionOp, device, work, sched, dma: Dma, rewriter: PatternRewriter) -> None:
        common = {name: op.properties[name] for name in ATTENTION_PROPS if name in op.properties}
        if work.hints.get("tphs"):
            (phase,) = op_phases(device, work)
            loads, onchip = dma.loads(phase, {"query": [op.query], "key": [op.key], "value": [op.value]})
            stages = tphs_stages(device, work)
            tphs = fpga.TphsOp.create(
                operands=[onchip[op.query], onchip[op.key], onchip[op.value], op.positions],
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
            stores, result = dma.stores(phase, tphs.result)
            rewriter.replace(op, [*loads, tphs, *stores], [result])
            return
        memory = self.target.memory_of(device)
        phases = attention_gemm_phases(device, work)
        placements = split_placement(sched, [phase_cost(device, memory, p) for p in phases])
        s, h, _ = op.query.type.get_shape()
        t = op.key.type.get_shape()[0]
        scores_type = TensorType(f32, [h, s, t])
        in1, on1 = dma.loads(phases[0], {"query": [op.query], "key": [op.key]})
        scores = fpga.ScoresOp.create(
            operands=[on1[op.query], on1[op.key], op.positions], result_types=[scores_type],
            properties={**common, "cycles": i64_attr(phases[0].cycles), **placements[0]},
        )
        out1, scores_off = dma.stores(phases[0], scores.result)
        in2, on2 = dma.loads(phases[1], {"scores": [scores_off]})
        softmax = fpga.SoftmaxOp.create(
            operands=[on2[scores_off]], result_types=[scores_type],
            properties={"cycles": i64_attr(phases[1].cycles), **placements[1]},
        )
        out2, probs_off = dma.stores(phases[1], softmax.result)
        in3, on3 = dma.loads(phases[2], {"probs": [probs_off], "value": [op.value]})
        pv = fpga.PvOp.create(
            operands=[on3[probs_off], on3[op.value]], result_types=[op.result.type],
            properties={**common, "cycles": i64_attr(phases[2].cycles), **placements[2]},
        )
        out3, result = dma.stores(phases[2], pv.result)
        rewriter.replace(op, [*in1, scores, *out1, *in2, softmax, *out2, *in3, pv, *out3], [result])


@dataclass(frozen=True)
class ConvertLlmToFpgaPass(ModulePass):
    name = "convert-llm-to-fpga"

    target: str = ""
    """Target preset or .toml, when the pass runs outside `pimc compile`."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = LowerMappedOp(module_target(op, self.target, self.name))
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([pattern], dce_enabled=False), apply_recursively=False)
        walker.rewrite_module(op)

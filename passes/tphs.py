"""`tphs`: choose the attention dataflow of every `llm.attention` for the target's FPGA device.

TPHS (token-parallel, head-sequential; MEADOW, arXiv 2503.11663) runs QKᵀ, softmax and SV of one head
after another as an on-chip pipeline, so scores never go off chip; the GEMM form runs each product as
its own pass through off-chip memory. `dataflow` is `tphs`, `gemm` or `auto` (the faster of the two by
the FPGA cost model). TPHS is used only when its intermediates fit the on-chip buffers; otherwise the
op keeps the GEMM form and says why in an `fpga.note` attribute (never a schedule that overflows).

The choice is recorded on the op as `fpga.dataflow` and as the cost hint `pimc.hint.tphs` (1 or 0) that
the FPGA cost model and `convert-llm-to-fpga` read. Deciding (`choose_dataflow`, `q_fusion_refusal`: the
cost model only) is kept apart from rewriting (the patterns `MarkAttentionDataflow`, `FuseQProjection`).

MEADOW's pipeline starts at the Q projection: with TPHS, the chain linear(q) → reshape (→ rope) →
attention becomes one `llm.fused` op (pattern `tphs_attention`, hint `pimc.hint.tphs_q`) whose Q is made
head by head on the parallel PEs and never goes off chip. It is fused only when every device of the
target is an FPGA (elsewhere the mapper keeps its choice of device for the Q linear), the linear runs on
the int8 PEs, the input rows fit on chip beside the TPHS buffers, and the fused pipeline is faster than
the parts by the cost model; otherwise the attention says why in `fpga.q_note`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern

from pimc.dialects import llm
from pimc.dialects.llm_work import HINT_PREFIX, op_work
from pimc.dialects.work import Work
from pimc.errors import PimcError
from pimc.passes.chains import build_fused, produced_once_by, replace_chain
from pimc.targets import Target, load_target
from pimc.targets.fpga.cost import fpga_cost, fpga_supports, tphs_onchip_bytes
from pimc.targets.fpga.schema import FpgaDevice

DATAFLOWS = ("auto", "gemm", "tphs")
HINT = HINT_PREFIX + "tphs"
Q_HINT = HINT_PREFIX + "tphs_q"
ROPE_HINT = HINT_PREFIX + "tphs_q_rope"
PATTERN = "tphs_attention"


def fpga_devices(target: Target) -> list:
    return [d for d in target.devices if d.kind == "fpga"]


# --------------------------------------------------------------------------- decisions (no IR changes)


@dataclass(frozen=True)
class DataflowChoice:
    tphs: bool
    note: str | None = None
    """Why TPHS was not used when its intermediates do not fit on chip."""


def choose_dataflow(device: FpgaDevice, memory, work: Work, dataflow: str) -> DataflowChoice:
    """TPHS or GEMM for one attention of `work` (hints without `tphs`): as asked, when TPHS fits on chip;
    for `auto` the faster of the two by the cost model."""
    if dataflow == "gemm":
        return DataflowChoice(False)
    need, capacity = tphs_onchip_bytes(device, work), device.onchip_bytes
    if need > capacity:
        return DataflowChoice(False, f"TPHS intermediates need {need} B on chip, more than the {capacity} B of "
                                     f"'{device.name}': GEMM form")
    if dataflow == "tphs":
        return DataflowChoice(True)
    tphs = fpga_cost(device, memory, dataclasses.replace(work, hints={**work.hints, "tphs": 1.0}))
    return DataflowChoice(tphs.latency_s < fpga_cost(device, memory, work).latency_s)


def match_q_chain(attention: llm.AttentionOp) -> list[Operation] | None:
    """linear(q) → reshape (→ rope) → attention, each intermediate used once; None when Q comes otherwise."""
    rope = produced_once_by(attention.query, llm.RopeOp)
    if rope is not None and rope.positions != attention.positions:
        return None
    query = rope.input if rope is not None else attention.query
    reshape = produced_once_by(query, llm.ReshapeOp)
    if reshape is None:
        return None
    linear = produced_once_by(reshape.input, llm.LinearOp)
    if linear is None or linear.input.type.get_shape()[0] != reshape.input.type.get_shape()[0]:
        return None
    return [linear, reshape, *([rope] if rope is not None else []), attention]


def q_fusion_refusal(device: FpgaDevice, memory, chain: list[Operation], fused: llm.FusedOp) -> str | None:
    """Why the TPHS pipeline `fused` should not replace `chain` (it does not fit on chip or is not faster
    than the parts); None when it should."""
    work = op_work(fused)
    need, capacity = tphs_onchip_bytes(device, work), device.onchip_bytes
    fused_s = fpga_cost(device, memory, work).latency_s
    parts_s = sum(fpga_cost(device, memory, op_work(op)).latency_s for op in chain)
    if need > capacity:
        return f"needs {need} B on chip, more than the {capacity} B"
    if not fused_s < parts_s:
        return f"{fused_s:.3e} s fused, not faster than {parts_s:.3e} s apart"
    return None


# --------------------------------------------------------------------------- rewrites


class MarkAttentionDataflow(RewritePattern):
    """Record `choose_dataflow`'s choice on every attention (`fpga.dataflow`, the `tphs` hint, `fpga.note`)."""

    def __init__(self, device: FpgaDevice, memory, dataflow: str):
        self.device, self.memory, self.dataflow = device, memory, dataflow
        self.notes: list[str] = []

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.AttentionOp, rewriter: PatternRewriter) -> None:
        op.attributes.pop(HINT, None)
        op.attributes.pop("fpga.note", None)
        choice = choose_dataflow(self.device, self.memory, op_work(op), self.dataflow)
        if choice.note is not None:
            op.attributes["fpga.note"] = StringAttr(choice.note)
            self.notes.append(choice.note)
        op.attributes[HINT] = IntegerAttr(int(choice.tphs), i64)
        op.attributes["fpga.dataflow"] = StringAttr("tphs" if choice.tphs else "gemm")


class FuseQProjection(RewritePattern):
    """Fuse the Q projection into a TPHS attention's pipeline when it fits and pays (see the module doc);
    otherwise say why in `fpga.q_note`."""

    def __init__(self, device: FpgaDevice, memory):
        self.device, self.memory = device, memory

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.AttentionOp, rewriter: PatternRewriter) -> None:
        if op.attributes[HINT].value.data != 1:
            return
        op.attributes.pop("fpga.q_note", None)
        chain = match_q_chain(op)
        if chain is None:
            return
        if not fpga_supports(self.device, op_work(chain[0])):
            op.attributes["fpga.q_note"] = StringAttr("Q projection not on the int8 PEs: not fused into TPHS")
            return
        fused = build_fused(chain, PATTERN)
        fused.attributes[Q_HINT] = IntegerAttr(1, i64)
        if any(isinstance(part, llm.RopeOp) for part in chain):
            fused.attributes[ROPE_HINT] = IntegerAttr(1, i64)
        why = q_fusion_refusal(self.device, self.memory, chain, fused)
        if why is not None:
            op.attributes["fpga.q_note"] = StringAttr(f"Q projection not fused into TPHS: {why}")
            fused.erase()
            return
        replace_chain(rewriter, chain, fused)


def select_dataflow(module: ModuleOp, target: Target, dataflow: str = "auto") -> list[str]:
    """Mark every attention op TPHS or GEMM for the target's (first) FPGA device, then (every device an
    FPGA) fuse Q projections into the TPHS pipelines; return the notes."""
    if dataflow not in DATAFLOWS:
        raise PimcError(f"--dataflow '{dataflow}': expected one of {', '.join(DATAFLOWS)}")
    devices = fpga_devices(target)
    if not devices:
        if dataflow == "tphs":
            raise PimcError(f"--dataflow tphs: target '{target.name}' has no FPGA device that offers it")
        return []
    device = devices[0]
    memory = target.memory_of(device)
    mark = MarkAttentionDataflow(device, memory, dataflow)
    PatternRewriteWalker(mark, apply_recursively=False).rewrite_module(module)
    if all(d.kind == "fpga" for d in target.devices):
        PatternRewriteWalker(FuseQProjection(device, memory), apply_recursively=False).rewrite_module(module)
    return mark.notes


@dataclass(frozen=True)
class TphsPass(ModulePass):
    name = "tphs"

    target: str = "zcu102-meadow"
    """A target preset name or .toml path."""
    dataflow: str = "auto"
    """auto | gemm | tphs"""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        select_dataflow(op, load_target(self.target), self.dataflow)

"""`tphs`: choose the attention dataflow of every `llm.attention` for the target's FPGA device.

TPHS (token-parallel, head-sequential; MEADOW, arXiv 2503.11663) runs QKᵀ, softmax and SV of one head
after another as an on-chip pipeline, so scores never go off chip; the GEMM form runs each product as
its own pass through off-chip memory. `dataflow` is `tphs`, `gemm` or `auto` (the faster of the two by
the FPGA cost model). TPHS is used only when its intermediates fit the on-chip buffers; otherwise the
op keeps the GEMM form and says why in an `fpga.note` attribute (never a schedule that overflows).

The choice is recorded on the op as `fpga.dataflow` and as the cost hint `pimc.hint.tphs` (1 or 0) that
the FPGA cost model and `convert-llm-to-fpga` read.

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
from xdsl.rewriter import InsertPoint, Rewriter

from pimc.dialects import llm
from pimc.dialects.llm_work import HINT_PREFIX, op_work
from pimc.errors import PimcError
from pimc.passes.fuse import build_fused
from pimc.targets import Target, load_target
from pimc.targets.fpga.cost import fpga_cost, fpga_supports, tphs_onchip_bytes

DATAFLOWS = ("auto", "gemm", "tphs")
HINT = HINT_PREFIX + "tphs"
Q_HINT = HINT_PREFIX + "tphs_q"
ROPE_HINT = HINT_PREFIX + "tphs_q_rope"
PATTERN = "tphs_attention"


def fpga_devices(target: Target) -> list:
    return [d for d in target.devices if d.kind == "fpga"]


def select_dataflow(module: ModuleOp, target: Target, dataflow: str = "auto") -> list[str]:
    """Mark every attention op TPHS or GEMM for the target's (first) FPGA device; return the notes."""
    if dataflow not in DATAFLOWS:
        raise PimcError(f"--dataflow '{dataflow}': expected one of {', '.join(DATAFLOWS)}")
    devices = fpga_devices(target)
    if not devices:
        if dataflow == "tphs":
            raise PimcError(f"--dataflow tphs: target '{target.name}' has no FPGA device that offers it")
        return []
    device = devices[0]
    memory = target.memory_of(device)
    notes, tphs_ops = [], []
    for op in module.walk():
        if not isinstance(op, llm.AttentionOp):
            continue
        op.attributes.pop(HINT, None)
        op.attributes.pop("fpga.note", None)
        work = op_work(op)
        need, capacity = tphs_onchip_bytes(device, work), device.onchip_bytes
        use_tphs = False
        if dataflow != "gemm":
            if need > capacity:
                note = (f"TPHS intermediates need {need} B on chip, more than the {capacity} B of "
                        f"'{device.name}': GEMM form")
                op.attributes["fpga.note"] = StringAttr(note)
                notes.append(note)
            elif dataflow == "tphs":
                use_tphs = True
            else:
                tphs = fpga_cost(device, memory, dataclasses.replace(work, hints={**work.hints, "tphs": 1.0}))
                use_tphs = tphs.latency_s < fpga_cost(device, memory, work).latency_s
        op.attributes[HINT] = IntegerAttr(int(use_tphs), i64)
        op.attributes["fpga.dataflow"] = StringAttr("tphs" if use_tphs else "gemm")
        if use_tphs:
            tphs_ops.append(op)
    if all(d.kind == "fpga" for d in target.devices):
        for op in tphs_ops:
            fuse_q_projection(op, device, memory)
    return notes


def _single_use(value) -> bool:
    return len(list(value.uses)) == 1


def q_chain(attention: llm.AttentionOp) -> list[Operation] | None:
    """linear(q) → reshape (→ rope) → attention, each intermediate used once; None when Q comes otherwise."""
    chain: list[Operation] = [attention]
    value = attention.query
    owner = value.owner
    if isinstance(owner, llm.RopeOp) and _single_use(value) and owner.positions == attention.positions:
        chain.insert(0, owner)
        value = owner.input
        owner = value.owner
    if not (isinstance(owner, llm.ReshapeOp) and _single_use(value)):
        return None
    chain.insert(0, owner)
    value = owner.input
    linear = value.owner
    if not (isinstance(linear, llm.LinearOp) and _single_use(value) and linear.input.type.get_shape()[0] == value.type.get_shape()[0]):
        return None
    return [linear, *chain]


def fuse_q_projection(attention: llm.AttentionOp, device, memory) -> None:
    """Fuse the Q projection into `attention`'s TPHS pipeline when it fits and pays (see the module doc)."""
    attention.attributes.pop("fpga.q_note", None)
    chain = q_chain(attention)
    if chain is None:
        return
    if not fpga_supports(device, op_work(chain[0])):
        attention.attributes["fpga.q_note"] = StringAttr("Q projection not on the int8 PEs: not fused into TPHS")
        return
    fused = build_fused(chain, PATTERN)
    fused.attributes[Q_HINT] = IntegerAttr(1, i64)
    if any(isinstance(op, llm.RopeOp) for op in chain):
        fused.attributes[ROPE_HINT] = IntegerAttr(1, i64)
    work = op_work(fused)
    need, capacity = tphs_onchip_bytes(device, work), device.onchip_bytes
    fused_s = fpga_cost(device, memory, work).latency_s
    parts_s = sum(fpga_cost(device, memory, op_work(op)).latency_s for op in chain)
    if need > capacity or not fused_s < parts_s:
        why = (f"needs {need} B on chip, more than the {capacity} B" if need > capacity
               else f"{fused_s:.3e} s fused, not faster than {parts_s:.3e} s apart")
        attention.attributes["fpga.q_note"] = StringAttr(f"Q projection not fused into TPHS: {why}")
        fused.erase()
        return
    Rewriter.insert_op(fused, InsertPoint.before(attention))
    attention.result.replace_all_uses_with(fused.result)
    for op in reversed(chain):
        Rewriter.erase_op(op)


@dataclass(frozen=True)
class TphsPass(ModulePass):
    name = "tphs"

    target: str = "zcu102-meadow"
    """A target preset name or .toml path."""
    dataflow: str = "auto"
    """auto | gemm | tphs"""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        select_dataflow(op, load_target(self.target), self.dataflow)

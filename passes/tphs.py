"""`tphs`: choose the attention dataflow of every `llm.attention` for the target's FPGA device.

TPHS (token-parallel, head-sequential; MEADOW, arXiv 2503.11663) runs QKᵀ, softmax and SV of one head
after another as an on-chip pipeline, so scores never go off chip; the GEMM form runs each product as
its own pass through off-chip memory. `dataflow` is `tphs`, `gemm` or `auto` (the faster of the two by
the FPGA cost model). TPHS is used only when its intermediates fit the on-chip buffers; otherwise the
op keeps the GEMM form and says why in an `fpga.note` attribute (never a schedule that overflows).

The choice is recorded on the op as `fpga.dataflow` and as the cost hint `pimc.hint.tphs` (1 or 0) that
the FPGA cost model and `convert-llm-to-fpga` read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64

from pimc.dialects import llm
from pimc.dialects.llm_work import HINT_PREFIX, op_work
from pimc.errors import PimcError
from pimc.targets import Target, load_target
from pimc.targets.fpga.cost import fpga_cost, tphs_onchip_bytes
from xdsl.passes import ModulePass

DATAFLOWS = ("auto", "gemm", "tphs")
HINT = HINT_PREFIX + "tphs"


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
    notes = []
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
    return notes


@dataclass(frozen=True)
class TphsPass(ModulePass):
    name = "tphs"

    target: str = "zcu102-meadow"
    """A target preset name or .toml path."""
    dataflow: str = "auto"
    """auto | gemm | tphs"""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        select_dataflow(op, load_target(self.target), self.dataflow)

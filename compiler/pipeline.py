"""The compile pipeline, stage by stage: build `llm` → graph passes → map → lower → checks.

Each stage is a function of the module in memory; `pimc opt` can run the same passes by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from pimc.dialects import llm
from pimc.errors import PimcError
from pimc.ir import make_context, print_module, verify
from pimc.mapping.from_ir import MappedFunction, annotate, map_module
from pimc.mapping.mapper import MapOptions
from pimc.passes import ConvertLlmToCpuPass, QuantizePass
from pimc.passes.cim_select import select_resident_weights
from pimc.passes.convert_llm_to_cim import LowerCimPass
from pimc.passes.convert_llm_to_fpga import ConvertLlmToFpgaPass
from pimc.passes.convert_llm_to_systolic import ConvertLlmToSystolicPass
from pimc.passes.convert_llm_to_pud import LowerPudPass
from pimc.passes.fuse import fuse_module
from pimc.passes.module_target import forget_target, in_fused_body, record_target
from pimc.passes.pack_weights import pack_weights, packing_report
from pimc.passes.tphs import select_dataflow
from pimc.targets import Target

LOWERINGS = {"cpu": ConvertLlmToCpuPass, "fpga": ConvertLlmToFpgaPass, "cim": LowerCimPass, "systolic": ConvertLlmToSystolicPass, "dram_pud": LowerPudPass}
"""Per device kind, the pass that lowers the `llm` ops mapped to it."""

REPORT_SECTIONS = {"weight_packing": packing_report}
"""Report keys read off a lowered program by device-specific summaries (None: the key is left out)."""


def report_sections(module: ModuleOp) -> dict:
    """The sections of `REPORT_SECTIONS` that `module` has something to say about."""
    sections = {key: summary(module) for key, summary in REPORT_SECTIONS.items()}
    return {key: value for key, value in sections.items() if value is not None}


@dataclass
class Lowered:
    module: ModuleOp
    llm_ir: str
    mapped: list[MappedFunction]


def graph_passes(module: ModuleOp, wbits: float, group: int, abits: float = 32) -> None:
    QuantizePass(bits=wbits, group=group, abits=abits).apply(make_context(), module)
    verify(module, "after graph passes")


def target_passes(module: ModuleOp, target: Target, dataflow: str = "auto", fuse: bool = False) -> None:
    """Graph decisions that depend on the target's devices: the attention dataflow of an FPGA, the
    weights crossbars keep resident (the rest are not offered to them), and with `fuse` the chains
    that are cheaper as one kernel."""
    select_dataflow(module, target, dataflow)
    select_resident_weights(module, target)
    if fuse:
        fuse_module(module, target)


def weight_passes(module: ModuleOp, weights, target: Target) -> None:
    """Passes that need the weight values (MEADOW weight packing, when the target has an FPGA)."""
    pack_weights(module, weights, target)


def map_and_lower(module: ModuleOp, target: Target, mapping: MapOptions = MapOptions()) -> Lowered:
    """Schedule on `target` (CP-SAT by default; checked), record the graph-level IR, then lower
    to device dialects."""
    llm_ir = print_module(module)
    mapped = map_module(module, target, mapping)
    annotate(mapped, target)
    record_target(module, target)  # device numbers for the lowerings
    for kind in sorted({d.kind for d in target.devices}):
        if kind not in LOWERINGS:
            raise PimcError(f"target '{target.name}': no lowering for device kind '{kind}' yet")
        LOWERINGS[kind]().apply(make_context(), module)
    forget_target(module)
    leftover = [op.name for op in module.walk()
                if isinstance(op, llm.LlmOp) and not isinstance(op, llm.WeightOp) and not in_fused_body(op)]
    if leftover:
        raise PimcError(f"lowering left {len(leftover)} llm ops unlowered (first: {leftover[0]})")
    verify(module, "lowered program")
    return Lowered(module, llm_ir, mapped)

"""`convert-llm-to-cim`: each linear mapped to a crossbar device becomes a `cim.linear`.

It carries the layout `crossbar-tile` chose, the crossbars `cim-residency` allocated, the
converter settings of the device and the mapper's placement. `lower-cim` runs the three passes in
order; it is what the compile pipeline applies for `cim` devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from pimc.dialects import cim, llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.dialects.sched import sched_properties
from pimc.errors import PimcError
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.passes.cim_residency import FIRST_ATTR, CimResidencyPass
from pimc.passes.crossbar_tile import TILING_ATTR, CrossbarTilePass
from pimc.passes.module_target import module_target, placed_on
from pimc.targets import Target
from pimc.targets.cim import CimDevice


class LowerCrossbarLinear(RewritePattern):
    def __init__(self, target: Target):
        self.target = target

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, llm.LinearOp):
            return
        device_name = placed_on(op, "cim")
        if device_name is None:
            return
        if TILING_ATTR not in op.attributes or FIRST_ATTR not in op.attributes:
            raise PimcError("convert-llm-to-cim: run crossbar-tile and cim-residency first (or lower-cim)")
        if op.wquant is None or op.aquant is None:
            raise PimcError("convert-llm-to-cim: a crossbar linear needs integer weights (wquant) and inputs (aquant)")
        device = self.target.device(device_name)
        assert isinstance(device, CimDevice)
        tiling = op.attributes[TILING_ATTR].data
        lowered = cim.LinearOp.create(
            operands=list(op.operands),
            result_types=[op.result.type],
            properties={
                "wquant": op.wquant,
                "aquant": op.aquant,
                "crossbar_rows": i64_attr(device.crossbar_rows),
                "crossbar_cols": i64_attr(device.crossbar_cols),
                "cell_bits": i64_attr(device.cell_bits),
                "slice_k": tiling["slice_k"],
                "weight_slices": tiling["weight_slices"],
                "first_crossbar": op.attributes[FIRST_ATTR],
                "crossbars": tiling["crossbars"],
                "dac_bits": i64_attr(device.dac_bits),
                "adc_bits": i64_attr(device.adc_bits),
                "analog_subtract": i64_attr(int(device.differential_sense == "analog")),
                "adc_mode": StringAttr(device.adc_mode),
                "adc_full_scale": f64_attr(device.adc_full_scale),
                "noise_sigma": f64_attr(device.noise_sigma),
                "noise_seed": i64_attr(device.noise_seed),
                **sched_properties(op.attributes[SCHED_ATTR]),
            },
        )
        rewriter.replace(op, lowered)


@dataclass(frozen=True)
class ConvertLlmToCimPass(ModulePass):
    name = "convert-llm-to-cim"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        walker = PatternRewriteWalker(
            GreedyRewritePatternApplier([LowerCrossbarLinear(target)], dce_enabled=False), apply_recursively=False
        )
        walker.rewrite_module(op)


@dataclass(frozen=True)
class LowerCimPass(ModulePass):
    """crossbar-tile, cim-residency, convert-llm-to-cim."""

    name = "lower-cim"

    target: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for p in (CrossbarTilePass(self.target), CimResidencyPass(self.target), ConvertLlmToCimPass(self.target)):
            p.apply(ctx, op)


__all__ = ["ConvertLlmToCimPass", "LowerCimPass"]

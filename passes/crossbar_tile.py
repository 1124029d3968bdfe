"""`crossbar-tile`: lay each linear mapped to a crossbar (`cim`) device out on its crossbars.

Splits K into slices of crossbar rows (never summing across two weight-scale groups in one column),
N into groups of outputs per crossbar, each weight magnitude into `cell_bits` slices held as
(G+, G-) column pairs, and the input codes into DAC steps. The layout is recorded on the op as the
`cim.tiling` attribute (operator granularity: tiles are attributes, not ops); `cim-residency` and
`convert-llm-to-cim` read it. Device numbers come from the target (`target` option, or the target
the compile pipeline records on the module).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.dialects.llm import i64_attr
from pimc.dialects.llm_work import op_work
from pimc.passes.module_target import module_target, placed_on
from pimc.targets.cim import CimDevice, work_tiling

TILING_ATTR = "cim.tiling"


@dataclass(frozen=True)
class CrossbarTilePass(ModulePass):
    name = "crossbar-tile"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        for linear in op.walk():
            if not isinstance(linear, llm.LinearOp):
                continue
            device_name = placed_on(linear, "cim")
            if device_name is None:
                continue
            device = target.device(device_name)
            assert isinstance(device, CimDevice)
            t = work_tiling(device, op_work(linear))
            linear.attributes[TILING_ATTR] = DictionaryAttr(
                {
                    "slice_k": i64_attr(t.slice_k),
                    "k_slices": i64_attr(t.k_slices),
                    "weight_slices": i64_attr(t.weight_slices),
                    "n_slices": i64_attr(t.n_slices),
                    "crossbars": i64_attr(t.crossbars),
                    "dac_steps": i64_attr(t.dac_steps),
                }
            )

"""`cim-residency`: give every weight that runs on crossbars its own crossbars, once, for good.

Weights are programmed once and reused by every token and every function (prefill and decode read
the same weight store names): each distinct weight gets a contiguous range of crossbars on its
device, in order of first use. If a device's resident weights need more crossbars than it has,
this is an error naming both numbers. The one-time cost of programming them (row-by-row writes,
`program_parallel_crossbars` at a time, plus reading the codes from memory) is recorded per device
in the module attribute `cim.residency`, separately from the per-token schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.dialects.cim import RESIDENCY_ATTR
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.dialects.llm_work import op_work
from pimc.errors import PimcError
from pimc.passes.crossbar_tile import TILING_ATTR
from pimc.passes.module_target import module_target, placed_on
from pimc.targets.cim import CimDevice, program_cost, work_tiling

FIRST_ATTR = "cim.first_crossbar"


def weight_name(linear: llm.LinearOp) -> str:
    owner = linear.weight.owner
    if not isinstance(owner, llm.WeightOp):
        raise PimcError("cim-residency: a crossbar linear needs a constant weight (llm.weight)")
    return owner.properties["name"].data


@dataclass(frozen=True)
class CimResidencyPass(ModulePass):
    name = "cim-residency"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        first: dict[tuple[str, str], int] = {}  # (device, weight) -> first crossbar
        used: dict[str, int] = {}
        narrow: dict[str, tuple[int, int]] = {}  # device -> (rows used, group) of a group-limited slice
        totals: dict[str, dict[str, float]] = {}
        for linear in op.walk():
            if not isinstance(linear, llm.LinearOp) or placed_on(linear, "cim") is None:
                continue
            if TILING_ATTR not in linear.attributes:
                raise PimcError("cim-residency: a crossbar linear has no cim.tiling; run crossbar-tile first")
            device_name = placed_on(linear, "cim")
            key = (device_name, weight_name(linear))
            crossbars = linear.attributes[TILING_ATTR].data["crossbars"].value.data
            if key not in first:
                device = target.device(device_name)
                assert isinstance(device, CimDevice)
                first[key] = used.get(device_name, 0)
                used[device_name] = first[key] + crossbars
                cost = program_cost(device, work_tiling(device, op_work(linear)), target.memory_of(device))
                t = totals.setdefault(device_name, {"weights": 0, "latency": 0.0, "energy": 0.0, "bytes": 0.0})
                t["weights"] += 1
                t["latency"] += cost.latency_s
                t["energy"] += cost.energy_j
                t["bytes"] += cost.offchip_bytes
            linear.attributes[FIRST_ATTR] = i64_attr(first[key])
            slice_k = linear.attributes[TILING_ATTR].data["slice_k"].value.data
            k = linear.weight.type.get_shape()[1]
            group = op_work(linear).dims["wgroup"]
            if group < k and slice_k < target.device(device_name).crossbar_rows:
                narrow.setdefault(device_name, (slice_k, group))
        report = {}
        for device_name in sorted(used):
            device = target.device(device_name)
            assert isinstance(device, CimDevice)
            if used[device_name] > device.crossbars:
                hint = ""
                if device_name in narrow:
                    rows, group = narrow[device_name]
                    hint = (f"; weight-scale groups of {group} use only {rows} of the {device.crossbar_rows} "
                            f"crossbar rows (--group {device.crossbar_rows} or a multiple fills them)")
                raise PimcError(
                    f"cim device '{device_name}': the resident weights need {used[device_name]} crossbars, "
                    f"it has {device.crossbars} ({device.tiles} tiles x {device.crossbars_per_tile}){hint}"
                )
            t = totals[device_name]
            report[device_name] = DictionaryAttr(
                {
                    "crossbars_used": i64_attr(used[device_name]),
                    "crossbars_available": i64_attr(device.crossbars),
                    "weights": i64_attr(int(t["weights"])),
                    "program_latency_s": f64_attr(t["latency"]),
                    "program_energy_j": f64_attr(t["energy"]),
                    "program_offchip_bytes": f64_attr(t["bytes"]),
                }
            )
        if report:
            op.attributes[RESIDENCY_ATTR] = DictionaryAttr(report)

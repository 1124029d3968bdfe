"""`cim-select`: decide, before mapping, which weights each crossbar (`cim`) device keeps resident.

Crossbars hold their weights for good (`cim-residency` programs them once), so a crossbar device
can only run the linears whose weights fit its crossbars together. On a target where other devices
can run linears too, the mapper must not be offered more than fits: this pass ranks each weight by
the time crossbars save over the fastest other device (summed over its uses in every function) per
crossbar it takes, keeps the best ones while they fit, and rules the device out for the linears of
the others (the `pimc.not_on` attribute the mapper reads). On a target where no other device can
run a linear, nothing is ruled out: `cim-residency` then reports the overflow as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.dialects.llm_work import op_work
from pimc.mapping.from_ir import exclude_device, excluded_devices
from pimc.passes.module_target import module_target
from pimc.targets import Target, can_run, op_cost
from pimc.targets.cim import CimDevice, work_tiling

@dataclass
class _Candidate:
    weight: str
    crossbars: int = 0
    saved_s: float = 0.0
    linears: list[llm.LinearOp] = field(default_factory=list)


def _weight_name(op: llm.LinearOp) -> str | None:
    owner = op.weight.owner
    return owner.properties["name"].data if isinstance(owner, llm.WeightOp) else None


def select_resident_weights(module: ModuleOp, target: Target) -> dict[str, list[str]]:
    """Rule crossbar devices out for the linears whose weights do not fit; return the kept weights."""
    kept: dict[str, list[str]] = {}
    devices = [d.name for d in target.devices]
    for device in (d for d in target.devices if isinstance(d, CimDevice)):
        candidates: dict[str, _Candidate] = {}
        others_everywhere = True
        for op in module.walk():
            if not isinstance(op, llm.LinearOp) or device.name in excluded_devices(op):
                continue
            work = op_work(op)
            name = _weight_name(op)
            if name is None or not can_run(target, device.name, work):
                continue
            others = [d for d in devices if d != device.name and can_run(target, d, work)]
            if not others:
                others_everywhere = False
                break
            c = candidates.setdefault(name, _Candidate(name))
            c.crossbars = max(c.crossbars, work_tiling(device, work).crossbars)
            best_other = min(op_cost(target, d, work).latency_s for d in others)
            c.saved_s += max(0.0, best_other - op_cost(target, device.name, work).latency_s)
            c.linears.append(op)
        if not others_everywhere:
            continue  # some linear has nowhere else to go: keep them all; cim-residency checks the fit
        free = device.crossbars
        chosen = []
        for c in sorted(candidates.values(), key=lambda c: (-c.saved_s / c.crossbars, c.weight)):
            if c.saved_s > 0 and c.crossbars <= free:
                free -= c.crossbars
                chosen.append(c.weight)
                continue
            reason = ("crossbars full (its weight does not fit beside weights that save more time per crossbar)"
                      if c.saved_s > 0 else "crossbars save no time on its weight")
            for op in c.linears:
                exclude_device(op, device.name, reason)
        kept[device.name] = sorted(chosen)
    return kept


@dataclass(frozen=True)
class CimSelectPass(ModulePass):
    name = "cim-select"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        select_resident_weights(op, module_target(op, self.target, self.name))

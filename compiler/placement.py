"""The per-op placement table: which device each op went to, what it cost there, and why.

Built from the mapper's problems and checked schedules (so it shows exactly what was priced): for
every op, its cost on each device that can run it, the device chosen, and a short reason — the only
device that runs it, the fastest one, or the fastest was passed over by the scheduler (busy, or its
inputs were elsewhere) — plus the devices a target pass ruled out and why. Stored in the manifest,
so a bundle's report shows it too; `flops` (the work the cost models were given) places each op
on a roofline; the report's `placement` key and Markdown section render it.
"""

from __future__ import annotations

from typing import Any

from xdsl.dialects.builtin import DictionaryAttr

from pimc.dialects import llm
from pimc.mapping.from_ir import MappedFunction, excluded_devices
from pimc.passes.fuse import FUSION_ATTR
from pimc.targets import CpuDevice, Target
from pimc.targets.cpu.weight_format import format_read


def _reason(kind: str, device: str, candidates: dict[str, dict[str, float]], solver: str) -> str:
    if len(candidates) == 1:
        return f"only {device} runs {kind}"
    fastest = min(candidates, key=lambda d: (candidates[d]["latency_s"], d))
    if candidates[device]["latency_s"] <= candidates[fastest]["latency_s"]:
        return f"fastest of {len(candidates)}"
    return f"{solver} scheduler: earliest finish ({fastest} is faster but was busy or its inputs were elsewhere)"


def _weight_format(ir_op, device) -> str | None:
    """The format a CPU reads a linear's integer codes in, where it is not the IR's (`weight_format`).
    Read off the op's wquant; a fused op gets none (its body has moved into the lowered kernel)."""
    wquant = ir_op.wquant if isinstance(ir_op, llm.LinearOp) else None
    if not isinstance(device, CpuDevice) or wquant is None or not wquant.integer_codes:
        return None
    return format_read(device, wquant.code_bits)


def placement_rows(fn: MappedFunction, target: Target | None = None) -> list[dict[str, Any]]:
    """One row per op of `fn`, in schedule order. With `target`, an op on a CPU that reads its
    weights in a format of its own (`weight_format`) says which (`weight_format`: "q2_k")."""
    rows = []
    for slot in fn.schedule.ops_in_order():
        node = fn.problem.op_by_name[slot.op]
        candidates = {
            d: {"latency_s": c.latency_s, "energy_j": c.energy_j, "offchip_bytes": c.offchip_bytes}
            for d in fn.problem.capable_devices(slot.op)
            for c in (fn.problem.costs[(slot.op, d)],)
        }
        chosen = candidates[slot.device]
        row = {
            "op": slot.op,
            "kind": node.kind,
            "device": slot.device,
            "start_s": slot.start_s,
            **chosen,
            "flops": node.flops,
            "why": _reason(node.kind, slot.device, candidates, fn.schedule.solver),
            "candidates": candidates,
        }
        ir_op = fn.ops[slot.op]
        weights = [v.owner.properties["name"].data for v in ir_op.operands if isinstance(v.owner, llm.WeightOp)]
        if weights:
            row["weights"] = weights
        if isinstance(ir_op, llm.FusedOp):  # (its body has moved into the device's fused kernel)
            choice = ir_op.attributes.get(FUSION_ATTR)
            row["fused"] = {
                "pattern": ir_op.pattern.data,
                **({k: v.value.data for k, v in choice.data.items()} if isinstance(choice, DictionaryAttr) else {}),
            }
        read_as = _weight_format(ir_op, target.device(slot.device)) if target is not None else None
        if read_as:
            row["weight_format"] = read_as
        ruled_out = excluded_devices(ir_op)
        if ruled_out:
            row["ruled_out"] = ruled_out
        rows.append(row)
    return rows


def placement_table(mapped: list[MappedFunction], target: Target | None = None) -> dict[str, list[dict[str, Any]]]:
    """{function: rows} for every mapped function."""
    return {fn.name: placement_rows(fn, target) for fn in mapped}

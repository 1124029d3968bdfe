"""`fuse`: run chains of ops as one kernel whose intermediates stay on chip, where that is cheaper.

Patterns (each op in at most one chain, tried in this order; every intermediate must have one use):
  gated_mlp        linear(gate) → activation, linear(up), mul (→ linear(down))   on the same input
  attention_block  (rope(q) →) attention → reshape → linear(o)
  norm_linear      rmsnorm/layernorm → linear (→ activation)
  linear_act       linear (with its bias) → silu/gelu/relu/relu2

A chain becomes one `llm.fused` op holding the original ops, so the reference semantics are those of
the parts. Fusion is priced, not assumed: the fused op's work is the sum of its parts minus the
intermediates' off-chip bytes (`llm_work`), the device's cost model prices it, and a chain is fused
only when that is faster than its parts each on their fastest device. Only devices with a fused
lowering whose on-chip buffer holds the intermediates may run it — today CPUs with a `cache_bytes`
(`cpu.fused`) — and the mapper is told the others are ruled out and why (`pimc.not_on`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter

from pimc.dialects import llm
from pimc.dialects.llm import f64_attr
from pimc.dialects.llm_work import fused_intermediate_bytes, op_work
from pimc.mapping.from_ir import exclude_device, excluded_devices
from pimc.passes.chains import build_fused, only_user, produced_once_by, replace_chain
from pimc.passes.module_target import module_target
from pimc.targets import Target, can_run, op_cost

FUSION_ATTR = "pimc.fusion"
"""On a fused op: the chain's cost fused and unfused (seconds) and the bytes kept on chip."""

ACTIVATIONS = (llm.SiluOp, llm.GeluOp, llm.ReluOp, llm.Relu2Op)


def match_gated_mlp(op: Operation) -> list[Operation] | None:
    if not isinstance(op, llm.MulOp):
        return None
    for act_value, up_value in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
        act = produced_once_by(act_value, ACTIVATIONS)
        up = produced_once_by(up_value, llm.LinearOp)
        gate = produced_once_by(act.input, llm.LinearOp) if act is not None else None
        if gate is None or up is None or gate.input != up.input:
            continue
        chain = [gate, act, up, op]
        down = only_user(op.result)
        if isinstance(down, llm.LinearOp) and down.input == op.result:
            chain.append(down)
        return chain
    return None


def match_attention_block(op: Operation) -> list[Operation] | None:
    if not isinstance(op, llm.AttentionOp):
        return None
    reshape = only_user(op.result)
    if not isinstance(reshape, llm.ReshapeOp):
        return None
    out = only_user(reshape.result)
    if not isinstance(out, llm.LinearOp) or out.input != reshape.result:
        return None
    rope = produced_once_by(op.query, llm.RopeOp)
    return ([rope] if rope is not None else []) + [op, reshape, out]


def match_norm_linear(op: Operation) -> list[Operation] | None:
    if not isinstance(op, llm.RMSNormOp | llm.LayerNormOp):
        return None
    linear = only_user(op.result)
    if not isinstance(linear, llm.LinearOp) or linear.input != op.result:
        return None
    act = only_user(linear.result)
    return [op, linear] + ([act] if isinstance(act, ACTIVATIONS) else [])


def match_linear_act(op: Operation) -> list[Operation] | None:
    if not isinstance(op, llm.LinearOp):
        return None
    act = only_user(op.result)
    return [op, act] if isinstance(act, ACTIVATIONS) else None


PATTERNS: dict[str, Callable[[Operation], list[Operation] | None]] = {
    "gated_mlp": match_gated_mlp,
    "attention_block": match_attention_block,
    "norm_linear": match_norm_linear,
    "linear_act": match_linear_act,
}


def fused_lowering_buffer(device) -> int | None:
    """On-chip bytes a device's fused kernel keeps intermediates in; None when it has no fused lowering."""
    return getattr(device, "cache_bytes", None) if device.kind == "cpu" else None


@dataclass(frozen=True)
class FusionChoice:
    fused_s: float
    unfused_s: float
    onchip_bytes: float
    runs_on: dict[str, str]
    """device -> "" when it may run the fused op, else why not."""


def price(fused: llm.FusedOp, chain: list[Operation], target: Target) -> FusionChoice:
    """The chain fused (on its best fused-capable device) and unfused (each part on its fastest device)."""
    onchip = fused_intermediate_bytes(fused)
    work = op_work(fused)
    runs_on, fused_s = {}, float("inf")
    for device in target.devices:
        buffer = fused_lowering_buffer(device)
        if buffer is None:
            runs_on[device.name] = f"no fused kernel for {device.kind} devices"
        elif onchip > buffer:
            runs_on[device.name] = f"fused intermediates ({onchip:.0f} B) exceed its {buffer} B on chip"
        else:
            runs_on[device.name] = ""
            fused_s = min(fused_s, op_cost(target, device.name, work).latency_s)
    unfused_s = 0.0
    for op in chain:
        part, ruled_out = op_work(op), excluded_devices(op)
        unfused_s += min(op_cost(target, d.name, part).latency_s for d in target.devices
                         if d.name not in ruled_out and can_run(target, d.name, part))
    return FusionChoice(fused_s, unfused_s, onchip, runs_on)


def fuse_module(module: ModuleOp, target: Target, patterns: tuple[str, ...] = tuple(PATTERNS)) -> int:
    """Fuse every chain of `patterns` that is cheaper fused; return how many were fused."""
    count = 0
    for fn in (op for op in module.ops if isinstance(op, func.FuncOp)):
        claimed: set[Operation] = set()
        for name in patterns:
            for anchor in list(fn.body.block.ops):
                if anchor in claimed:
                    continue
                chain = PATTERNS[name](anchor)
                if chain is None or claimed.intersection(chain):
                    continue
                fused = build_fused(chain, name)
                choice = price(fused, chain, target)
                if not choice.fused_s < choice.unfused_s:
                    fused.erase()
                    continue
                fused.attributes[FUSION_ATTR] = DictionaryAttr({
                    "fused_s": f64_attr(choice.fused_s), "unfused_s": f64_attr(choice.unfused_s),
                    "onchip_bytes": f64_attr(choice.onchip_bytes),
                })
                for device, reason in choice.runs_on.items():
                    if reason:
                        exclude_device(fused, device, reason)
                replace_chain(PatternRewriter(chain[-1]), chain, fused)
                claimed.add(fused)
                count += 1
    return count


@dataclass(frozen=True)
class FusePass(ModulePass):
    name = "fuse"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""
    patterns: str = "gated_mlp,attention_block,norm_linear,linear_act"
    """Comma-separated patterns to try, in order."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        names = tuple(p.strip() for p in self.patterns.split(",") if p.strip())
        unknown = [n for n in names if n not in PATTERNS]
        if unknown:
            from pimc.errors import PimcError

            raise PimcError(f"fuse: unknown pattern '{unknown[0]}' (patterns: {', '.join(PATTERNS)})")
        fuse_module(op, module_target(op, self.target, self.name), names)

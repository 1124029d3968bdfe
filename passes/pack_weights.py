"""`pack-weights`: MEADOW weight packing of every integer-quantized linear weight for the FPGA.

For each `llm.linear` with integer `wquant` codes, pack the codes of its weight (see
`pimc.targets.fpga.packing`) and, when packing makes them smaller, record the packing on the op as
`fpga.packing` (chunk, packet, unique chunks, IDs, raw and packed code bytes) plus the cost hints
`pimc.hint.packed_weight_bytes` (codes packed, scales and bias as before) and `pimc.hint.pack_ids`
(the unpack unit's work). When it would not (high-entropy codes: nearly every chunk unique), the op
gets an `fpga.packing_note` with the ratio instead. Needs the weight values, so it runs where the
weight store is known; it only acts on modules prepared for an FPGA (`tphs` records the target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, ModuleOp, StringAttr, f64
from xdsl.ir import BlockArgument
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.dialects.llm import i64_attr
from pimc.dialects.llm_semantics import quantize_matrix
from pimc.dialects.llm_work import HINT_PREFIX, op_work
from pimc.errors import PimcError
from pimc.targets import Target
from pimc.targets.fpga.packing import PackedMatrix, pack_matrix

CHUNK = 2
"""Codes per chunk. Assumed: on real SmolLM2-135M weights re-quantized to per-tensor int8, C=2 packed best of
1/2/3/4/8 (bench/reproduce_meadow.py); MEADOW does not state its C in the text we have."""
PACKET = 16
"""IDs per packet (one width header each); assumed likewise (8 packs 0.6% better there, 64 2.6% worse)."""


def weight_of(op: llm.LinearOp) -> llm.WeightOp | None:
    """The `llm.weight` a linear reads, also from inside an `llm.fused` body (through its operand)."""
    value = op.weight
    if isinstance(value, BlockArgument) and isinstance(value.owner.parent_op(), llm.FusedOp):
        value = value.owner.parent_op().inputs[value.index]
    return value.owner if isinstance(value.owner, llm.WeightOp) else None


def packable(op: llm.LinearOp) -> bool:
    q = op.wquant
    return q is not None and q.format.data.startswith("int") and weight_of(op) is not None


def pack_weights(
    module: ModuleOp,
    weights: Mapping[str, np.ndarray],
    target: Target | None = None,
    chunk: int = CHUNK,
    packet: int = PACKET,
    force: bool = False,
) -> dict[str, PackedMatrix]:
    """Annotate packable linears of `module` when `target` has an FPGA (or always with `force`);
    return the packings."""
    if not force and (target is None or not any(d.kind == "fpga" for d in target.devices)):
        return {}
    packed: dict[tuple[str, str], PackedMatrix] = {}
    for op in module.walk():
        if not isinstance(op, llm.LinearOp) or not packable(op):
            continue
        name = weight_of(op).properties["name"].data
        if name not in weights:
            raise PimcError(f"pack-weights: weight '{name}' is not in the weight store")
        key = (name, str(op.wquant))
        if key not in packed:
            w = np.asarray(weights[name], dtype=np.float32)
            rows, k = w.shape
            codes = quantize_matrix(w, op.wquant).codes.reshape(rows, -1)[:, :k]
            packed[key] = pack_matrix(codes, chunk, int(op.wquant.code_bits), packet)
        p = packed[key]
        for attr in ("fpga.packing", "fpga.packing_note", HINT_PREFIX + "packed_weight_bytes", HINT_PREFIX + "pack_ids"):
            op.attributes.pop(attr, None)
        if p.packed_bytes >= p.raw_bytes:
            op.attributes["fpga.packing_note"] = StringAttr(
                f"not packed: {p.unique} unique chunks of {chunk} would give ratio {p.ratio:.3f}"
            )
            continue
        op.attributes["fpga.packing"] = DictionaryAttr({
            "chunk": i64_attr(chunk), "packet": i64_attr(packet), "unique": i64_attr(p.unique),
            "ids": i64_attr(p.n_ids), "raw_bytes": i64_attr(p.raw_bytes), "packed_bytes": i64_attr(p.packed_bytes),
        })
        weight_bytes = op_work(op).weight_bytes - p.raw_bytes + p.packed_bytes
        op.attributes[HINT_PREFIX + "packed_weight_bytes"] = FloatAttr(float(weight_bytes), f64)
        op.attributes[HINT_PREFIX + "pack_ids"] = FloatAttr(float(p.n_ids), f64)
    return {name: p for (name, _), p in packed.items()}


@dataclass(frozen=True)
class PackWeightsPass(ModulePass):
    name = "pack-weights"

    weights: str = ""
    """A .safetensors file with the weights the module names."""
    chunk: int = CHUNK
    packet: int = PACKET

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.weights:
            raise PimcError("pack-weights needs weights=FILE.safetensors")
        from safetensors.numpy import load_file

        pack_weights(op, load_file(self.weights), chunk=self.chunk, packet=self.packet, force=True)


def packing_report(module: ModuleOp) -> dict | None:
    """Per packed weight of a lowered program (its `fpga.unpack` ops, each weight once): raw and packed
    code bytes, their ratio, unique chunks and IDs; plus the totals. None when nothing is packed."""
    from pimc.dialects import fpga  # the lowered dialect; this pass itself runs before lowering

    matrices: dict[str, dict] = {}
    for op in module.walk():
        if not isinstance(op, fpga.UnpackOp):
            continue
        weight = op.weight
        if isinstance(weight.owner, fpga.DmaInOp):  # the packed stream as the DMA brought it on chip
            weight = weight.owner.sources[weight.index]
        if not isinstance(weight.owner, llm.WeightOp):
            continue
        name = weight.owner.properties["name"].data
        raw, packed = op.raw_bytes.value.data, op.packed_bytes.value.data
        matrices.setdefault(name, {
            "raw_bytes": raw, "packed_bytes": packed, "ratio": raw / packed,
            "unique_chunks": op.unique.value.data, "ids": op.ids.value.data,
            "chunk": op.chunk.value.data, "packet": op.packet.value.data,
        })
    if not matrices:
        return None
    raw = sum(m["raw_bytes"] for m in matrices.values())
    packed = sum(m["packed_bytes"] for m in matrices.values())
    return {"matrices": dict(sorted(matrices.items())), "raw_bytes": raw, "packed_bytes": packed, "ratio": raw / packed}

"""The work each `llm` op asks of a device (arithmetic and bytes), counted from its shapes.

Hardware-independent: the cost models in `pimc.targets` turn a `Work` into time and energy.
Shape ops that only reinterpret a row-major buffer (reshape) move no bytes; copies (transpose,
concat, slice) read and write theirs. A KV-cache append writes only its new rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, IntegerType, TensorType
from xdsl.ir import Operation, SSAValue

from pimc.dialects import llm
from pimc.dialects.work import CodedWeight, Work


def element_bytes(typ: TensorType) -> float:
    elt = typ.element_type
    if isinstance(elt, IntegerType):
        return elt.width.data / 8
    return getattr(elt, "bitwidth", 32) / 8


def nbytes(value: SSAValue) -> float:
    typ = value.type
    assert isinstance(typ, TensorType)
    return math.prod(typ.get_shape()) * element_bytes(typ)


def numel(value: SSAValue) -> int:
    return math.prod(value.type.get_shape())


def weight_storage_bytes(op: llm.LinearOp) -> float:
    """Bytes of the linear's weight as stored (quantized codes + scales, or its element type)."""
    if op.wquant is not None:
        return op.wquant.storage_bytes(op.weight.type.get_shape())
    return nbytes(op.weight)


def weight_readers(value: SSAValue) -> list[llm.LinearOp]:
    """The linears that read `value` as their weight matrix, also inside fused ops."""
    readers = []
    for use in value.uses:
        reader = use.operation
        if isinstance(reader, llm.LinearOp) and reader.weight is value:
            readers.append(reader)
        elif isinstance(reader, llm.FusedOp):
            readers.extend(weight_readers(reader.body.block.args[use.index]))
    return readers


def stored_weight_bytes(value: SSAValue) -> float:
    """Bytes of a weight as stored: quantized when a linear reads it as its matrix (a tied table is
    stored once, at its least storage size); a bias, a norm's scale or a table: its own elements."""
    return min(map(weight_storage_bytes, weight_readers(value)), default=nbytes(value))


def _is_weight(value: SSAValue) -> bool:
    return isinstance(value.owner, llm.WeightOp)


def _split_inputs(op: Operation) -> tuple[float, float]:
    weights = sum(nbytes(v) for v in op.operands if _is_weight(v))
    acts = sum(nbytes(v) for v in op.operands if not _is_weight(v))
    return weights, acts


def _elementwise(flops_per_element: float) -> Callable[[Operation], Work]:
    def count(op: Operation) -> Work:
        w, a = _split_inputs(op)
        return Work(op.name, flops_per_element * numel(op.results[0]), 32, w, a, nbytes(op.results[0]))

    return count


def _linear(op: llm.LinearOp) -> Work:
    n, k = op.weight.type.get_shape()
    rows = numel(op.input) // k
    bias_bytes = nbytes(op.bias) if op.bias is not None else 0.0
    flops = 2.0 * rows * n * k + (rows * n if op.bias is not None else 0)
    code_bits = op.wquant.code_bits if op.wquant is not None else 32.0
    dims = {"rows": rows, "n": n, "k": k}
    coded: tuple[CodedWeight, ...] = ()
    if op.wquant is not None and op.wquant.integer_codes:
        # Integer codes: the span of one scale along k, and whether codes carry zero points.
        dims["wgroup"] = op.wquant.group.data if op.wquant.scale.data == "per_group" else k
        dims["wzero"] = 1 - op.wquant.symmetric.data
        coded = (CodedWeight(n, k, code_bits, weight_storage_bytes(op)),)
    elif op.wquant is not None and op.wquant.format.data in llm.GGML_FORMATS:
        dims["ggml_block"] = op.wquant.group.data  # blocks with their own scales: no integer codes to compute with
    return Work(
        op.name, flops, math.ceil(code_bits), weight_storage_bytes(op) + bias_bytes, nbytes(op.input), nbytes(op.result),
        dims=dims, weight_bits=code_bits,
        act_bits=op.aquant.code_bits if op.aquant is not None else 32.0, coded_weights=coded,
    )


def _matmul(op: llm.MatmulOp) -> Work:
    out = op.result.type.get_shape()
    k = op.lhs.type.get_shape()[-1]
    dims = {"batch": math.prod(out[:-2]), "m": out[-2], "n": out[-1], "k": k}
    return Work(op.name, 2.0 * math.prod(out) * k, 32, 0.0, nbytes(op.lhs) + nbytes(op.rhs), nbytes(op.result), dims=dims)


def _attention(op: llm.AttentionOp) -> Work:
    s, h, d = op.query.type.get_shape()
    t = op.key.type.get_shape()[0]
    flops = 2.0 * 2 * s * t * h * d + 5.0 * s * t * h  # QKᵀ and PV products, softmax
    reads = nbytes(op.query) + nbytes(op.key) + nbytes(op.value) + nbytes(op.positions)
    dims = {"queries": s, "keys": t, "heads": h, "kv_heads": op.kv_heads.value.data, "head_dim": d}
    return Work(op.name, flops, 32, 0.0, reads, nbytes(op.result), dims=dims)


def _embedding(op: llm.EmbeddingOp) -> Work:
    rows = nbytes(op.result)  # only the selected rows of the table are read
    return Work(op.name, 0.0, 32, rows, nbytes(op.ids), nbytes(op.result))


def _norm(op: Operation) -> Work:
    w, a = _split_inputs(op)
    return Work(op.name, 5.0 * numel(op.results[0]), 32, w, a, nbytes(op.results[0]))


def _copy(op: Operation) -> Work:
    w, a = _split_inputs(op)
    return Work(op.name, 0.0, 32, w, a, nbytes(op.results[0]))


def _view(op: Operation) -> Work:
    return Work(op.name, 0.0, 32, 0.0, 0.0, 0.0)


def _kv_append(op: llm.KVCacheAppendOp) -> Work:
    return Work(op.name, 0.0, 32, 0.0, nbytes(op.input) + nbytes(op.positions), nbytes(op.input))


def fused_intermediate_bytes(op: llm.FusedOp) -> float:
    """Bytes of the values the body makes and uses itself: what stays on chip instead of going off."""
    last = op.body.block.last_op
    return sum(nbytes(inner.results[0]) for inner in op.body.block.ops if inner is not last and inner.results
               and not any(use.operation is last for use in inner.results[0].uses))


def _fused(op: llm.FusedOp) -> Work:
    """The sum of the parts, minus the intermediates' off-chip bytes: the body's ops read the operands
    once (weights at their storage size) and write only the result."""
    block = op.body.block
    parts = [op_work(inner) for inner in block.ops if not isinstance(inner, llm.YieldOp)]
    weight_args = [arg for arg, value in zip(block.args, op.inputs) if _is_weight(value)]  # in operand order
    weight_bytes = 0.0
    coded: list[CodedWeight] = []
    for arg in weight_args:
        weight_bytes += stored_weight_bytes(arg)
        stored = min(weight_readers(arg), key=weight_storage_bytes, default=None)
        if stored is not None:
            coded.extend(op_work(stored).coded_weights)
    anchor = next((w for w in parts if w.op in ("llm.linear", "llm.attention")), parts[0])
    return Work(
        op.name, sum(w.flops for w in parts), min(w.compute_bits for w in parts), weight_bytes,
        sum(nbytes(v) for v in op.inputs if not _is_weight(v)), nbytes(op.result),
        dims=_merged(parts, "dims"), weight_bits=anchor.weight_bits, act_bits=anchor.act_bits,
        coded_weights=tuple(coded), hints=_merged(parts, "hints"),
    )


def _merged(parts: list[Work], field: str) -> dict:
    """The parts' dims (or hints) in one dict when no two parts name the same key (e.g. a linear's
    rows/n/k beside an attention's heads/keys), so mechanism-level models can price the chain; else {}."""
    merged: dict = {}
    for part in parts:
        values = getattr(part, field)
        if merged.keys() & values.keys():
            return {}
        merged.update(values)
    return merged


ROPE_FLOPS = 6.0
"""Operations per rotated element of `llm.rope`: two products, one add, the cos/sin lookups."""

TRANSCENDENTAL_FLOPS = 4.0
"""Flops charged per element for exp, log, sqrt, tanh, sin ... (one polynomial evaluation's worth)."""

_CHEAP_UNARY = ("neg", "abs", "floor", "ceil", "round", "sign", "not")


def _unary(op: llm.UnaryOp) -> Work:
    per = 1.0 if op.fn.data in _CHEAP_UNARY else TRANSCENDENTAL_FLOPS
    return _elementwise(per)(op)


def _binary(op: llm.BinaryOp) -> Work:
    return _elementwise(TRANSCENDENTAL_FLOPS if op.fn.data == "pow" else 1.0)(op)


def _reduce(op: llm.ReduceOp) -> Work:
    w, a = _split_inputs(op)
    return Work(op.name, float(numel(op.input)), 32, w, a, nbytes(op.result))


def _einsum(op: llm.EinsumOp) -> Work:
    """2 flops (multiply, add) per point of the full index space."""
    sizes = llm.einsum_sizes(op.equation.data, [v.type.get_shape() for v in op.inputs])
    assert isinstance(sizes, dict)
    w, a = _split_inputs(op)
    return Work(op.name, 2.0 * math.prod(sizes.values()), 32, w, a, nbytes(op.result))


COUNTERS: dict[type[Operation], Callable] = {
    llm.EmbeddingOp: _embedding,
    llm.RMSNormOp: _norm,
    llm.LayerNormOp: _norm,
    llm.LinearOp: _linear,
    llm.MatmulOp: _matmul,
    llm.RopeOp: _elementwise(ROPE_FLOPS),
    llm.AttentionOp: _attention,
    llm.SoftmaxOp: _elementwise(5.0),
    llm.SiluOp: _elementwise(4.0),
    llm.GeluOp: _elementwise(8.0),
    llm.ReluOp: _elementwise(1.0),
    llm.Relu2Op: _elementwise(2.0),
    llm.AddOp: _elementwise(1.0),
    llm.MulOp: _elementwise(1.0),
    llm.KVCacheReadOp: _view,
    llm.KVCacheAppendOp: _kv_append,
    llm.ArgmaxOp: _elementwise(1.0),
    llm.ReshapeOp: _view,
    llm.TransposeOp: _copy,
    llm.ConcatOp: _copy,
    llm.SliceOp: _copy,
    llm.FusedOp: _fused,
    llm.UnaryOp: _unary,
    llm.BinaryOp: _binary,
    llm.SelectOp: _elementwise(1.0),
    llm.CastOp: _copy,
    llm.ReduceOp: _reduce,
    llm.GatherOp: _copy,
    llm.BroadcastOp: _copy,
    llm.EinsumOp: _einsum,
}


def op_work(op: Operation) -> Work:
    """The work of one `llm` op; an op without a counter is an error, never a silent zero."""
    counter = COUNTERS.get(type(op))
    if counter is None:
        raise KeyError(f"no work model for operation '{op.name}'")
    work = counter(op)
    hints = {
        name.removeprefix(HINT_PREFIX): float(attr.value.data)
        for name, attr in op.attributes.items()
        if name.startswith(HINT_PREFIX) and isinstance(attr, IntegerAttr | FloatAttr)
    }
    return dataclasses.replace(work, hints={**work.hints, **hints}) if hints else work


HINT_PREFIX = "pimc.hint."
"""Numeric attributes `pimc.hint.<key>` on an `llm` op become `Work.hints[<key>]`."""

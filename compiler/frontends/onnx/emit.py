"""Translate an ONNX graph, specialized to one sequence length, into the body of one `llm` function.

Walks the nodes in order. A node whose inputs are all known folds (`fold.py`); any other node becomes
`llm` ops: the model-level op where the ONNX op says it directly (MatMul/Gemm with a weight → linear,
Gather from a table → embedding, LayerNormalization, RMSNormalization, Gelu, Attention), else generic
elementwise/shape ops. Each emitted op remembers its ONNX node (`onnx.node`) for the raising passes
and for error messages. An op type with no mapping is a `ModelError` naming node, op type and file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper as onnx_helper
from xdsl.builder import Builder
from xdsl.dialects.builtin import DenseArrayBase, StringAttr, TensorType, UnitAttr, bf16, f16, f32, i1, i64
from xdsl.ir import Attribute, Block, SSAValue
from xdsl.rewriter import InsertPoint

from pimc import progress
from pimc.dialects import llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.errors import ModelError
from pimc.frontends.onnx.fold import Const, Folder
from pimc.frontends.onnx.masks import causal_window, visible_from_mask
from pimc.frontends.onnx.reader import OnnxModel
from pimc.frontends.onnx.weights import WeightTable

ONNX_NODE = "onnx.node"
"""Attribute naming the ONNX node an op came from (removed once the import is done)."""
POSITIONAL = "onnx.positional"
"""Attribute on an `llm.weight` whose value was computed from the bound positions or mask."""


@dataclass(frozen=True)
class WeightRef:
    """A weight known by name and shape only (a graph input of a shape-only model)."""

    name: str
    shape: tuple[int, ...]


Value = Const | WeightRef | SSAValue


@dataclass(frozen=True)
class AttentionSpec:
    window: int | None


UNARY = {
    "Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
    "Tanh": "tanh", "Sigmoid": "sigmoid", "Cos": "cos", "Sin": "sin", "Erf": "erf", "Floor": "floor",
    "Ceil": "ceil", "Round": "round", "Sign": "sign", "Not": "not", "IsNaN": "isnan",
}
BINARY = {
    "Sub": "sub", "Div": "div", "Pow": "pow", "Max": "max", "Min": "min", "Mod": "mod", "Equal": "eq",
    "Less": "lt", "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge", "And": "and", "Or": "or", "Xor": "xor",
}
REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod"}
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


def numpy_of(element: Attribute) -> np.dtype:
    if element == i1:
        return np.dtype(bool)
    if element == i64:
        return np.dtype(np.int64)
    return np.dtype(np.float32)


def element_of_array(array: np.ndarray, fp: Attribute) -> Attribute:
    if array.dtype == bool:
        return i1
    return i64 if array.dtype.kind in "iu" else fp


def element_of_onnx(elem_type: int, fp: Attribute) -> Attribute:
    if elem_type == onnx.TensorProto.BOOL:
        return i1
    return fp if elem_type in FLOAT_TYPES else i64


def shape_of(v: Value) -> tuple[int, ...]:
    if isinstance(v, Const):
        return tuple(v.value.shape)
    if isinstance(v, WeightRef):
        return v.shape
    return tuple(v.type.get_shape())


class Importer:
    """Emits one function body for a fixed sequence length `seq`.

    `bindings` gives each graph input a value (function arguments, or constants such as an all-ones
    attention mask); `specs` carries what an import at the analysis length learned about attention
    windows and rotary tables, keyed by ONNX node name.
    """

    def __init__(self, model: OnnxModel, seq: int, table: WeightTable, static_cache: dict, specs: dict, fp: Attribute = f32):
        self.model, self.seq, self.table, self.static_cache, self.specs, self.fp = model, seq, table, static_cache, specs, fp
        self.where = str(model.path)
        self.folder = Folder(model.opsets, self.where)
        self.env: dict[str, Value] = {}
        self.const_names: dict[int, str] = {}
        self.materialized: dict[tuple[int, Attribute], SSAValue] = {}
        self.alive: list[Value] = []  # keeps every id()-keyed value alive, so no id is ever reused
        self.node: onnx.NodeProto | None = None
        self.positions: SSAValue | None = None
        self.found: dict[str, object] = {}

    # ------------------------------------------------------------------ driving

    def run(self, block: Block, bindings: dict[str, Value], positions: SSAValue | None) -> None:
        self.b = Builder(InsertPoint.at_end(block))
        self.positions = positions
        initializers, nodes = self.model.initializer_names(), self.model.graph.node
        with progress.task(f"importing {self.model.name}", total=len(initializers) + len(nodes)) as bar:
            for name in initializers:
                self.bind(name, Const(self.model.initializer(name), True, False, name))
                bar.advance()
            for name, value in bindings.items():
                self.bind(name, value)
            for index, node in enumerate(nodes):
                self.node = node
                self.import_node(index, node)
                bar.advance()
        self.node = None

    def bind(self, name: str, value: Value) -> None:
        self.env[name] = value
        if isinstance(value, Const):
            self.const_names.setdefault(id(value), name)
            self.alive.append(value)

    def lookup(self, name: str) -> Value | None:
        if not name:
            return None
        if name not in self.env:
            raise self.error(f"reads '{name}', which no earlier node or graph input defines")
        return self.env[name]

    def error(self, message: str) -> ModelError:
        node = self.node
        what = f"node '{node.name or node.output[0]}' ({node.op_type})" if node is not None else "graph"
        return ModelError(f"{self.where}: {what} {message}")

    def import_node(self, index: int, node: onnx.NodeProto) -> None:
        inputs = [self.lookup(n) for n in node.input]
        known = all(v is None or isinstance(v, Const) for v in inputs)
        if node.op_type == "Constant" or (known and node.op_type not in ("Shape", "Size")):
            outputs = self.fold(index, node, inputs)
        else:
            if node.domain not in ("", "ai.onnx"):
                raise self.error(f"is in domain '{node.domain}', which pimc does not map")
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise self.error("has no pimc mapping for its op type (only constant inputs of it fold)")
            outputs = handler(self, node, inputs)
        for name, value in zip(node.output, outputs):
            if name:
                self.bind(name, value)

    def fold(self, index: int, node: onnx.NodeProto, inputs: list) -> list[Value]:
        if index in self.static_cache:
            return self.static_cache[index]
        special = self.positional_embedding(node, inputs)
        if special is not None:
            return [special]
        outputs = self.folder.fold(node, inputs)
        if outputs and all(c.static for c in outputs) and node.op_type != "Constant" or node.op_type == "Constant":
            self.static_cache[index] = outputs
        return outputs

    def positional_embedding(self, node: onnx.NodeProto, inputs: list) -> SSAValue | None:
        """Gather of a table row per position (learned positions) → `llm.embedding` of the positions."""
        if node.op_type != "Gather" or self.positions is None or len(inputs) != 2:
            return None
        table, idx = inputs
        axis = onnx_helper.get_attribute_value(node.attribute[0]) if node.attribute else 0
        if not (table.static and table.value.ndim == 2 and table.value.dtype.kind == "f" and idx.positional and axis == 0):
            return None
        if idx.value.size != self.seq or not np.array_equal(idx.value.reshape(-1), np.arange(self.seq)):
            return None
        rows = self.op(llm.EmbeddingOp, [self.positions, self.weight(table)], (self.seq, table.value.shape[1]))
        return self.reshape(rows, (*idx.value.shape, table.value.shape[1]))

    # ------------------------------------------------------------------ values

    def const_name(self, c: Const) -> str:
        if c.source is not None:
            return c.source
        name = self.const_names.get(id(c), f"onnx.const.{len(self.const_names)}")
        return name if c.static else f"{name}@seq{self.seq}"

    def weight(self, v: Value, element: Attribute | None = None) -> SSAValue:
        """The SSA value of `v`, materializing a constant as an `llm.weight` of the table."""
        if isinstance(v, SSAValue):
            return v
        if isinstance(v, WeightRef):
            key = (id(v), self.fp)
            if key not in self.materialized:
                self.alive.append(v)
                op = self.b.insert(llm.WeightOp(v.name, TensorType(self.fp, list(v.shape))))
                self.materialized[key] = op.result
            return self.materialized[key]
        array = v.value
        element = element or element_of_array(array, self.fp)
        key = (id(v), element)
        if key not in self.materialized:
            self.alive.append(v)
            array = array.astype(numpy_of(element), copy=False)
            name = self.table.add(self.const_name(v), np.array(array, order="C"))
            op = llm.WeightOp(name, TensorType(element, list(array.shape)))
            if v.positional:
                op.attributes[POSITIONAL] = UnitAttr()
            self.b.insert(op)
            self.materialized[key] = op.result
        return self.materialized[key]

    def relayout(self, v: Const | WeightRef, steps: Sequence[tuple[str, tuple]], name_suffix: str = "") -> SSAValue:
        """A weight after transposes/reshapes (`("T", perm)`, `("R", shape)`), keeping its name."""
        if isinstance(v, WeightRef):
            shape = v.shape
            for kind, arg in steps:
                shape = tuple(shape[p] for p in arg) if kind == "T" else tuple(arg)
            return self.weight(WeightRef(v.name + name_suffix, shape))
        source = self.const_name(v)
        key = ("relayout", source, tuple(steps), name_suffix)
        if not v.static or key not in self.static_cache:  # folded once per model, not per function
            array = v.value
            for kind, arg in steps:
                array = np.transpose(array, arg) if kind == "T" else array.reshape(arg)
            array = np.array(array, order="C")
            if not v.static:
                return self.weight(Const(array, v.static, v.positional, source + name_suffix))
            self.static_cache[key] = Const(array, True, v.positional, source + name_suffix)
        return self.weight(self.static_cache[key])

    def op(self, cls, operands: Sequence[SSAValue | None], shape: Sequence[int], element: Attribute | None = None, **props) -> SSAValue:
        op = cls.create(
            operands=[o for o in operands if o is not None],
            result_types=[TensorType(element or self.fp, list(shape))],
            properties=props,
        )
        if self.node is not None:
            op.attributes[ONNX_NODE] = StringAttr(self.node.name or self.node.output[0])
        self.b.insert(op)
        return op.results[0]

    def element(self, v: Value) -> Attribute:
        if isinstance(v, SSAValue):
            return v.type.element_type
        if isinstance(v, WeightRef):
            return self.fp
        return element_of_array(v.value, self.fp)

    def reshape(self, x: SSAValue, shape: Sequence[int]) -> SSAValue:
        if tuple(shape) == shape_of(x):
            return x
        return self.op(llm.ReshapeOp, [x], shape, x.type.element_type)

    def transpose(self, x: SSAValue, perm: Sequence[int]) -> SSAValue:
        if list(perm) == list(range(len(perm))):
            return x
        shape = shape_of(x)
        return self.op(llm.TransposeOp, [x], [shape[p] for p in perm], x.type.element_type, perm=DenseArrayBase.from_list(i64, list(perm)))

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                value = onnx_helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def const_input(self, v: Value | None, what: str) -> np.ndarray | None:
        if v is None:
            return None
        if not isinstance(v, Const):
            raise self.error(f"needs a constant {what}; it is computed at run time")
        return v.value

    def opset(self) -> int:
        return self.model.opsets.get("", 1)

    def common_element(self, values: Sequence[Value]) -> Attribute:
        for v in values:
            if isinstance(v, SSAValue):
                return v.type.element_type
        return self.element(values[0])


# ---------------------------------------------------------------------- handlers

Handler = Callable[[Importer, onnx.NodeProto, list], list]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str):
    def register(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn

    return register


@handles("Identity", "Dropout")
def _identity(im: Importer, node, ins):
    return [ins[0]]


@handles("Shape")
def _shape(im: Importer, node, ins):
    shape = np.array(shape_of(ins[0]), dtype=np.int64)
    rank = len(shape)
    start, end = im.attr(node, "start", 0), im.attr(node, "end", rank)
    return [Const(shape[slice(max(-rank, min(rank, start)), max(-rank, min(rank, end)))], static=False)]


@handles("Size")
def _size(im: Importer, node, ins):
    return [Const(np.array(math.prod(shape_of(ins[0])), dtype=np.int64), static=False)]


@handles("Cast", "CastLike")
def _cast(im: Importer, node, ins):
    x = ins[0]
    if node.op_type == "Cast":
        target = element_of_onnx(im.attr(node, "to"), im.fp)
    else:
        target = im.element(ins[1])
    if im.element(x) == target:
        return [x]
    x = im.weight(x)
    return [im.op(llm.CastOp, [x], shape_of(x), target)]


def _binary_operands(im: Importer, a: Value, b: Value) -> tuple[SSAValue, SSAValue]:
    element = im.common_element([a, b])
    return im.weight(a, element), im.weight(b, element)


@handles("Add", "Mul", *BINARY)
def _binary(im: Importer, node, ins):
    if node.op_type == "Pow":  # the exponent takes the base's element type
        a = im.weight(ins[0])
        b = im.weight(ins[1], a.type.element_type)
    else:
        a, b = _binary_operands(im, ins[0], ins[1])
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    if node.op_type in ("Add", "Mul"):
        cls = llm.AddOp if node.op_type == "Add" else llm.MulOp
        return [im.op(cls, [a, b], shape, a.type.element_type)]
    fn = BINARY[node.op_type]
    element = a.type.element_type if fn in llm.BINARY_ARITH_FNS else i1
    if fn in llm.BINARY_LOGIC_FNS and a.type.element_type != i1:
        raise im.error("applies a logic function to non-boolean tensors")
    if node.op_type == "Mod" and not im.attr(node, "fmod", 0) and a.type.element_type != i64:
        raise im.error("is a float Mod without fmod = 1")
    return [im.op(llm.BinaryOp, [a, b], shape, element, fn=StringAttr(fn))]


@handles("Sum", "Mean")
def _variadic(im: Importer, node, ins):
    element = im.common_element(ins)
    acc = im.weight(ins[0], element)
    for v in ins[1:]:
        x = im.weight(v, element)
        acc = im.op(llm.AddOp, [acc, x], np.broadcast_shapes(shape_of(acc), shape_of(x)), element)
    if node.op_type == "Mean":
        n = im.weight(Const(np.array(len(ins), dtype=numpy_of(element))), element)
        acc = im.op(llm.BinaryOp, [acc, n], shape_of(acc), element, fn=StringAttr("div"))
    return [acc]


@handles(*UNARY)
def _unary(im: Importer, node, ins):
    x = im.weight(ins[0])
    element = i1 if node.op_type == "IsNaN" else x.type.element_type
    return [im.op(llm.UnaryOp, [x], shape_of(x), element, fn=StringAttr(UNARY[node.op_type]))]


@handles("Relu")
def _relu(im: Importer, node, ins):
    x = im.weight(ins[0])
    return [im.op(llm.ReluOp, [x], shape_of(x), x.type.element_type)]


@handles("Gelu")
def _gelu(im: Importer, node, ins):
    x = im.weight(ins[0])
    return [im.op(llm.GeluOp, [x], shape_of(x), approximate=StringAttr(im.attr(node, "approximate", "none")))]


@handles("Clip")
def _clip(im: Importer, node, ins):
    x = im.weight(ins[0])
    if im.opset() < 11:
        bounds = [Const(np.array(im.attr(node, k), np.float32)) if im.attr(node, k) is not None else None for k in ("min", "max")]
    else:
        bounds = (ins + [None, None])[1:3]
    for bound, fn in zip(bounds, ("max", "min")):
        if bound is not None:
            b = im.weight(bound, x.type.element_type)
            x = im.op(llm.BinaryOp, [x, b], np.broadcast_shapes(shape_of(x), shape_of(b)), x.type.element_type, fn=StringAttr(fn))
    return [x]


@handles("Where")
def _where(im: Importer, node, ins):
    cond = im.weight(ins[0], i1)
    a, b = _binary_operands(im, ins[1], ins[2])
    shape = np.broadcast_shapes(shape_of(cond), shape_of(a), shape_of(b))
    return [im.op(llm.SelectOp, [cond, a, b], shape, a.type.element_type)]


def _is_weight(v: Value) -> bool:
    return isinstance(v, WeightRef) or (isinstance(v, Const) and v.value.dtype.kind == "f")


def linear(im: Importer, x: SSAValue, w: Const | WeightRef, bias: SSAValue | None = None, transposed: bool = False, scale: float = 1.0) -> SSAValue:
    """x [..., K] times a weight stored [K, N] (or [N, K] when `transposed`) → `llm.linear` with [N, K]."""
    if isinstance(w, Const) and scale != 1.0:
        w = Const(w.value * np.float32(scale), w.static, w.positional, f"{im.const_name(w)}*{scale:g}")
    elif scale != 1.0:
        raise im.error("scales a weight input (alpha != 1) of a shape-only model")
    k_first = not transposed
    n, k = (shape_of(w)[1], shape_of(w)[0]) if k_first else shape_of(w)
    weight = im.relayout(w, [("T", (1, 0))] if k_first else [])
    xs = shape_of(x)
    if len(xs) == 1:
        y = im.op(llm.LinearOp, [im.reshape(x, (1, k)), weight, bias], (1, n))
        return im.reshape(y, (n,))
    return im.op(llm.LinearOp, [x, weight, bias], (*xs[:-1], n))


@handles("MatMul")
def _matmul(im: Importer, node, ins):
    a, b = ins
    if isinstance(a, SSAValue) and _is_weight(b) and len(shape_of(b)) == 2:
        if shape_of(a)[-1] != shape_of(b)[0]:
            raise im.error(f"multiplies {list(shape_of(a))} by {list(shape_of(b))}")
        return [linear(im, a, b)]
    if isinstance(a, SSAValue) and _is_weight(b) and len(shape_of(b)) > 2:
        return [_batched_weight_matmul(im, a, b)]
    return [_activation_matmul(im, im.weight(a), im.weight(b))]


def _activation_matmul(im: Importer, a: SSAValue, b: SSAValue) -> SSAValue:
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) == 1:
        return im.reshape(_activation_matmul(im, im.reshape(a, (1, sa[0])), b), _matmul_shape(im, sa, sb))
    if len(sb) == 1:
        return im.reshape(_activation_matmul(im, a, im.reshape(b, (sb[0], 1))), _matmul_shape(im, sa, sb))
    return im.op(llm.MatmulOp, [a, b], _matmul_shape(im, sa, sb))


def _matmul_shape(im: Importer, sa, sb) -> tuple[int, ...]:
    try:
        return _matmul_shape_symbolic(sa, sb)
    except ValueError:
        raise im.error(f"multiplies incompatible shapes {list(sa)} and {list(sb)}") from None


def _matmul_shape_symbolic(sa, sb) -> tuple[int, ...]:
    a, b = list(sa), list(sb)
    if len(a) == 1:
        return _matmul_shape_symbolic([1, a[0]], b)[:-2] + (b[-1],)
    if len(b) == 1:
        return _matmul_shape_symbolic(a, [b[0], 1])[:-1]
    if a[-1] != b[-2]:
        raise ValueError("inner dimensions differ")
    return tuple(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))) + (a[-2], b[-1])


def _batched_weight_matmul(im: Importer, x: SSAValue, w: Const | WeightRef) -> SSAValue:
    """x [..., K] @ w [B..., K, N]: a linear with the batch folded into the outputs when x has no batch of its own."""
    ws, xs = shape_of(w), shape_of(x)
    batch, k, n = ws[:-2], ws[-2], ws[-1]
    if len(xs) > 2 or xs[-1] != k:
        return _activation_matmul(im, x, im.weight(w))
    rows = xs[0] if len(xs) == 2 else 1
    bsz = math.prod(batch)
    # W'[b*N + n, k] = w[b, k, n]
    weight = im.relayout(w, [("R", (bsz, k, n)), ("T", (0, 2, 1)), ("R", (bsz * n, k))], "@[BN,K]")
    x2 = im.reshape(x, (rows, k))
    y = im.op(llm.LinearOp, [x2, weight], (rows, bsz * n))
    y = im.transpose(im.reshape(y, (rows, bsz, n)), (1, 0, 2))
    return im.reshape(y, (*batch, rows, n) if len(xs) == 2 else (*batch, n))


@handles("Gemm")
def _gemm(im: Importer, node, ins):
    a, b, c = (ins + [None])[:3]
    alpha, beta = im.attr(node, "alpha", 1.0), im.attr(node, "beta", 1.0)
    if im.attr(node, "transA", 0) or not isinstance(a, SSAValue) or not _is_weight(b):
        x = im.weight(a)
        if im.attr(node, "transA", 0):
            x = im.transpose(x, (1, 0))
        bb = im.weight(b)
        if im.attr(node, "transB", 0):
            bb = im.transpose(bb, (1, 0))
        y = _activation_matmul(im, x, bb)
        if alpha != 1.0:
            y = im.op(llm.MulOp, [y, im.weight(Const(np.array(alpha, np.float32)))], shape_of(y))
    else:
        bias = None
        n = shape_of(b)[0] if im.attr(node, "transB", 0) else shape_of(b)[1]
        if isinstance(c, Const) and c.value.size == n and c.value.ndim >= 1 and c.value.shape[-1] == n:
            values = c.value.reshape(n) * np.float32(beta)
            bias = im.weight(Const(values.astype(np.float32), c.static, c.positional, im.const_name(c) if beta == 1.0 else None))
            c = None
        y = linear(im, a, b, bias, transposed=bool(im.attr(node, "transB", 0)), scale=alpha)
    if c is not None:
        cc = im.weight(c, y.type.element_type)
        if beta != 1.0:
            cc = im.op(llm.MulOp, [cc, im.weight(Const(np.array(beta, np.float32)))], shape_of(cc))
        y = im.op(llm.AddOp, [y, cc], np.broadcast_shapes(shape_of(y), shape_of(cc)))
    return [y]


@handles("Gather")
def _gather(im: Importer, node, ins):
    data, idx = ins
    axis = im.attr(node, "axis", 0)
    ds = shape_of(data)
    axis = axis % len(ds) if ds else 0
    if _is_weight(data) and len(ds) == 2 and axis == 0 and isinstance(idx, SSAValue):
        ids = im.reshape(idx, (math.prod(shape_of(idx)),))
        rows = im.op(llm.EmbeddingOp, [ids, im.weight(data)], (shape_of(ids)[0], ds[1]))
        return [im.reshape(rows, (*shape_of(idx), ds[1]))]
    x = im.weight(data)
    indices = im.weight(idx, i64)
    return [im.op(llm.GatherOp, [x, indices], (*ds[:axis], *shape_of(indices), *ds[axis + 1 :]), x.type.element_type, axis=i64_attr(axis))]


def _target_shape(im: Importer, x_shape, spec: np.ndarray, allowzero: bool) -> tuple[int, ...]:
    dims = [int(d) for d in spec.reshape(-1)]
    out = [x_shape[i] if d == 0 and not allowzero and i < len(x_shape) else d for i, d in enumerate(dims)]
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise im.error(f"has an invalid target shape {dims}")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or math.prod(x_shape) % known:
            raise im.error(f"cannot reshape {list(x_shape)} to {dims}")
        out[out.index(-1)] = math.prod(x_shape) // known
    if math.prod(out) != math.prod(x_shape):
        raise im.error(f"cannot reshape {list(x_shape)} ({math.prod(x_shape)} elements) to {out}")
    return tuple(out)


@handles("Reshape")
def _reshape(im: Importer, node, ins):
    x = im.weight(ins[0])
    target = _target_shape(im, shape_of(x), im.const_input(ins[1], "shape"), bool(im.attr(node, "allowzero", 0)))
    return [im.reshape(x, target)]


@handles("Flatten")
def _flatten(im: Importer, node, ins):
    x = im.weight(ins[0])
    s = shape_of(x)
    axis = im.attr(node, "axis", 1) % (len(s) + 1) if s else 0
    return [im.reshape(x, (math.prod(s[:axis]), math.prod(s[axis:])))]


def _axes(im: Importer, node, ins, position: int) -> list[int] | None:
    if len(ins) > position and ins[position] is not None:
        return [int(a) for a in im.const_input(ins[position], "axes").reshape(-1)]
    value = im.attr(node, "axes")
    return None if value is None else [int(a) for a in value]


@handles("Squeeze")
def _squeeze(im: Importer, node, ins):
    x = im.weight(ins[0])
    s = shape_of(x)
    axes = _axes(im, node, ins, 1)
    axes = [i for i, d in enumerate(s) if d == 1] if axes is None else [a % len(s) for a in axes]
    if any(s[a] != 1 for a in axes):
        raise im.error(f"squeezes axes {axes} of shape {list(s)} that are not 1")
    return [im.reshape(x, [d for i, d in enumerate(s) if i not in axes])]


@handles("Unsqueeze")
def _unsqueeze(im: Importer, node, ins):
    x = im.weight(ins[0])
    s = list(shape_of(x))
    axes = _axes(im, node, ins, 1) or []
    rank = len(s) + len(axes)
    for a in sorted(a % rank for a in axes):
        s.insert(a, 1)
    return [im.reshape(x, s)]


@handles("Transpose")
def _transpose(im: Importer, node, ins):
    x = im.weight(ins[0])
    perm = im.attr(node, "perm") or list(reversed(range(len(shape_of(x)))))
    return [im.transpose(x, [int(p) for p in perm])]


@handles("Concat")
def _concat(im: Importer, node, ins):
    element = im.common_element(ins)
    rank = len(shape_of(ins[0]))
    axis = im.attr(node, "axis") % rank
    parts = [im.weight(v, element) for v in ins if shape_of(v)[axis] != 0]
    if len(parts) == 1:
        return [parts[0]]
    shape = list(shape_of(parts[0]))
    shape[axis] = sum(shape_of(p)[axis] for p in parts)
    return [im.op(llm.ConcatOp, parts, shape, element, axis=i64_attr(axis))]


def slice_axis(im: Importer, x: SSAValue, axis: int, start: int, end: int, step: int = 1) -> SSAValue:
    """x[..., start:end:step, ...] along `axis` with Python's clamping (positive steps only)."""
    size = shape_of(x)[axis]
    r = range(size)[slice(start, end, step)]
    if step <= 0:
        raise im.error("slices with a negative step")
    if len(r) == 0:  # an empty part (e.g. the pass-through of a full-width RoPE): nothing to compute
        shape = list(shape_of(x))
        shape[axis] = 0
        return Const(np.zeros(shape, numpy_of(x.type.element_type)), static=False)
    if r.start == 0 and len(r) == size:
        return x
    shape = list(shape_of(x))
    shape[axis] = len(r)
    props = {"axis": i64_attr(axis), "start": i64_attr(r.start), "end": i64_attr(r[-1] + 1)}
    if step != 1:
        props["step"] = i64_attr(step)
    return im.op(llm.SliceOp, [x], shape, x.type.element_type, **props)


def _clamp_index(v: int) -> int:
    return max(-(1 << 62), min(1 << 62, int(v)))


@handles("Slice")
def _slice(im: Importer, node, ins):
    x = im.weight(ins[0])
    rank = len(shape_of(x))
    if im.opset() < 10:
        starts, ends = im.attr(node, "starts"), im.attr(node, "ends")
        axes, steps = im.attr(node, "axes") or list(range(len(starts))), [1] * len(starts)
    else:
        starts = im.const_input(ins[1], "starts").reshape(-1).tolist()
        ends = im.const_input(ins[2], "ends").reshape(-1).tolist()
        axes = im.const_input(ins[3], "axes").reshape(-1).tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
        steps = im.const_input(ins[4], "steps").reshape(-1).tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        x = slice_axis(im, x, int(axis) % rank, _clamp_index(start), _clamp_index(end), int(step))
    return [x]


@handles("Split")
def _split(im: Importer, node, ins):
    x = im.weight(ins[0])
    s = shape_of(x)
    axis = im.attr(node, "axis", 0) % len(s)
    if len(ins) > 1 and ins[1] is not None:
        sizes = [int(v) for v in im.const_input(ins[1], "split").reshape(-1)]
    elif im.attr(node, "split") is not None:
        sizes = [int(v) for v in im.attr(node, "split")]
    else:
        n = im.attr(node, "num_outputs", len(node.output))
        chunk = -(-s[axis] // n)
        sizes = [min(chunk, s[axis] - i * chunk) for i in range(n)]
    if sum(sizes) != s[axis]:
        raise im.error(f"splits {s[axis]} into {sizes}")
    out, start = [], 0
    for size in sizes:
        out.append(slice_axis(im, x, axis, start, start + size))
        start += size
    return out


@handles("Expand")
def _expand(im: Importer, node, ins):
    x = im.weight(ins[0])
    target = tuple(int(d) for d in im.const_input(ins[1], "shape").reshape(-1))
    try:
        shape = np.broadcast_shapes(shape_of(x), target)
    except ValueError:
        raise im.error(f"expands {list(shape_of(x))} to {list(target)}") from None
    if shape == shape_of(x):
        return [x]
    return [im.op(llm.BroadcastOp, [x], shape, x.type.element_type)]


@handles("Softmax")
def _softmax(im: Importer, node, ins):
    x = im.weight(ins[0])
    rank = len(shape_of(x))
    axis = im.attr(node, "axis", -1 if im.opset() >= 13 else 1) % rank
    if im.opset() < 13 and axis != rank - 1:
        raise im.error(f"is a Softmax of opset {im.opset()} over axes {axis}.. (pimc maps the last axis only)")
    return [im.op(llm.SoftmaxOp, [x], shape_of(x), axis=i64_attr(axis))]


@handles(*REDUCE)
def _reduce(im: Importer, node, ins):
    x = im.weight(ins[0])
    s = shape_of(x)
    axes_from_input = node.op_type == "ReduceSum" and im.opset() >= 13 or im.opset() >= 18
    axes = _axes(im, node, ins, 1) if axes_from_input else im.attr(node, "axes")
    if not axes:
        if im.attr(node, "noop_with_empty_axes", 0):
            return [x]
        axes = list(range(len(s)))
    axes = sorted({int(a) % len(s) for a in axes})
    keep = bool(im.attr(node, "keepdims", 1))
    shape = [1 if i in axes else d for i, d in enumerate(s)] if keep else [d for i, d in enumerate(s) if i not in axes]
    props = {"fn": StringAttr(REDUCE[node.op_type]), "axes": DenseArrayBase.from_list(i64, axes)}
    if keep:
        props["keepdims"] = UnitAttr()
    return [im.op(llm.ReduceOp, [x], shape, x.type.element_type, **props)]


def _last_axis(im: Importer, node, rank: int) -> None:
    if im.attr(node, "axis", -1) % rank != rank - 1:
        raise im.error(f"normalizes from axis {im.attr(node, 'axis')} (pimc maps the last axis only)")


@handles("LayerNormalization")
def _layernorm(im: Importer, node, ins):
    x = im.weight(ins[0])
    _last_axis(im, node, len(shape_of(x)))
    w = im.weight(ins[1])
    b = im.weight(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    d = shape_of(x)[-1]
    if shape_of(w) != (d,) or (b is not None and shape_of(b) != (d,)):
        raise im.error(f"has scale/bias shapes {list(shape_of(w))} not [{d}]")
    return [im.op(llm.LayerNormOp, [x, w, b], shape_of(x), eps=f64_attr(im.attr(node, "epsilon", 1e-5)))]


@handles("RMSNormalization")
def _rmsnorm(im: Importer, node, ins):
    x = im.weight(ins[0])
    _last_axis(im, node, len(shape_of(x)))
    w = im.weight(ins[1])
    d = shape_of(x)[-1]
    if shape_of(w) != (d,):
        raise im.error(f"has a scale of shape {list(shape_of(w))}, not [{d}]")
    return [im.op(llm.RMSNormOp, [x, w], shape_of(x), eps=f64_attr(im.attr(node, "epsilon", 1e-5)))]


@handles("Einsum")
def _einsum(im: Importer, node, ins):
    equation = im.attr(node, "equation").replace(" ", "")
    if len(ins) == 2 and isinstance(ins[0], SSAValue) and _is_weight(ins[1]):
        y = _einsum_linear(im, equation, ins[0], ins[1])
        if y is not None:
            return [y]
    operands = [im.weight(v) for v in ins]
    sizes = llm.einsum_sizes(equation, [shape_of(v) for v in operands])
    if isinstance(sizes, str):
        raise im.error(f"has an equation pimc cannot read: {sizes}")
    out = equation.split("->")[1]
    return [im.op(llm.EinsumOp, operands, [sizes[c] for c in out], equation=StringAttr(equation))]


def _einsum_linear(im: Importer, equation: str, x: SSAValue, w: Const | WeightRef) -> SSAValue | None:
    """`x,w->out` with every index of w either contracted with x or kept in the output: one linear."""
    if "->" not in equation or "." in equation:
        return None
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None
    tx, tw = terms
    if len(tx) != len(shape_of(x)) or len(tw) != len(shape_of(w)) or len(set(tx)) != len(tx) or len(set(tw)) != len(tw):
        return None
    contracted = [c for c in tx if c in tw and c not in out]
    kept_w = [c for c in tw if c not in tx and c in out]
    rows = [c for c in tx if c not in tw and c in out]
    if not contracted or len(contracted) + len(kept_w) != len(tw) or len(rows) + len(contracted) != len(tx):
        return None
    if sorted(out) != sorted(rows + kept_w):
        return None
    size = dict(zip(tx, shape_of(x))) | dict(zip(tw, shape_of(w)))
    k = math.prod(size[c] for c in contracted)
    n = math.prod(size[c] for c in kept_w)
    m = math.prod(size[c] for c in rows)
    xp = im.reshape(im.transpose(x, [tx.index(c) for c in rows + contracted]), (m, k))
    weight = im.relayout(w, [("T", tuple(tw.index(c) for c in kept_w + contracted)), ("R", (n, k))], f"@einsum[{equation}]")
    y = im.op(llm.LinearOp, [xp, weight], (m, n))
    y = im.reshape(y, [size[c] for c in rows + kept_w])
    order = rows + kept_w
    return im.transpose(y, [order.index(c) for c in out])


@handles("Attention")
def _attention(im: Importer, node, ins):
    """The opset-23 Attention op: raised directly (causal, GQA) when its mask is causal."""
    q, k, v = (im.weight(x) for x in ins[:3])
    mask = ins[3] if len(ins) > 3 else None
    for extra in ins[4:6]:
        if extra is not None and (not isinstance(extra, Const) or extra.value.size):
            raise im.error("reads a past key/value cache; pimc builds the KV cache itself (export without one)")
    if im.attr(node, "softcap", 0.0) or im.attr(node, "qk_matmul_output_mode", 0) or any(node.output[1:]):
        raise im.error("uses softcap, qk outputs or present key/value outputs, which pimc does not map")
    qs, ks = shape_of(q), shape_of(k)
    if len(qs) == 4:
        _, heads, s, d = qs
        kv_heads, t = ks[1], ks[2]
        to_shd = lambda x, h: im.reshape(im.transpose(x, (0, 2, 1, 3)), (s, h, shape_of(x)[3]))
    elif len(qs) == 3:
        heads, kv_heads = im.attr(node, "q_num_heads"), im.attr(node, "kv_num_heads")
        s, d, t = qs[1], qs[2] // heads, ks[1]
        to_shd = lambda x, h: im.reshape(x, (s, h, shape_of(x)[2] // h))
    else:
        raise im.error(f"has query rank {len(qs)}")
    if t != s:
        raise im.error(f"attends {s} queries to {t} keys; pimc builds the KV cache itself")
    window = _attention_window(im, node, mask, bool(im.attr(node, "is_causal", 0)), s)
    scale = im.attr(node, "scale") or 1.0 / math.sqrt(d)
    y = causal_attention(im, to_shd(q, heads), to_shd(k, kv_heads), to_shd(v, kv_heads), scale, window)
    if len(qs) == 4:
        return [im.transpose(im.reshape(y, (1, s, heads, shape_of(y)[2])), (0, 2, 1, 3))]
    return [im.reshape(y, (1, s, heads * shape_of(y)[2]))]


def _attention_window(im: Importer, node, mask: Value | None, is_causal: bool, s: int) -> int | None:
    key = node.name or node.output[0]
    if mask is None and is_causal:
        return None
    if not isinstance(mask, Const):
        raise im.error("has a mask computed at run time; pimc raises causal masks only")
    visible = visible_from_mask(mask.value, s, s)
    if visible is not None and is_causal:
        visible &= np.tril(np.ones((s, s), dtype=bool))
    found = causal_window(visible) if visible is not None else None
    if found is None:
        raise im.error("has an attention mask that is not causal; pimc raises causal attention only")
    spec = im.specs.get(key) if isinstance(im.specs.get(key), AttentionSpec) else AttentionSpec(found[1])
    im.found[key] = spec
    return spec.window


def causal_attention(im: Importer, q: SSAValue, k: SSAValue, v: SSAValue, scale: float, window: int | None) -> SSAValue:
    """`llm.attention` over q [S, H, D], k/v [S, KV, D] at the function's positions (KV cache added later)."""
    s, heads, d = shape_of(q)
    kv_heads = shape_of(k)[1]
    if heads % kv_heads or shape_of(v)[:2] != shape_of(k)[:2]:
        raise im.error(f"has {heads} query heads over {kv_heads} key/value heads")
    props = {
        "heads": i64_attr(heads), "kv_heads": i64_attr(kv_heads), "head_dim": i64_attr(d),
        "scale": f64_attr(scale), "causal": UnitAttr(),
    }
    if window is not None:
        props["window"] = i64_attr(window)
    if shape_of(v)[2] != d:
        raise im.error("has values of another head size than its keys")
    return im.op(llm.AttentionOp, [q, k, v, im.positions], (s, heads, d), **props)


FP_TYPES = {onnx.TensorProto.BFLOAT16: bf16, onnx.TensorProto.FLOAT16: f16}


@handles("RotaryEmbedding")
def _rotary_embedding(im: Importer, node, ins):
    """The opset-23 RotaryEmbedding op → `llm.rope` at the function's positions (theta read from its cache)."""
    from pimc.frontends.onnx.masks import RopeSpec, rope_from_tables

    x = im.weight(ins[0])
    cos, sin = ins[1], ins[2]
    position_ids = ins[3] if len(ins) > 3 else None
    if not isinstance(cos, Const) or not isinstance(sin, Const):
        raise im.error("has rotary tables computed at run time")
    style = "interleaved" if im.attr(node, "interleaved", 0) else "half"
    key = node.name or node.output[0]
    if position_ids is not None:
        if not (isinstance(position_ids, Const) and np.array_equal(position_ids.value.reshape(-1), np.arange(im.seq))):
            raise im.error("rotates at positions other than the tokens' own")
        rows = min(cos.value.shape[0], 64)
        half_cos, half_sin = cos.value[:rows], sin.value[:rows]
    else:
        rows = im.seq
        half_cos, half_sin = cos.value.reshape(-1, cos.value.shape[-1]), sin.value.reshape(-1, sin.value.shape[-1])
    if style == "half":
        full = (np.concatenate([half_cos] * 2, -1), np.concatenate([half_sin] * 2, -1))
    else:
        full = (np.repeat(half_cos, 2, -1), np.repeat(half_sin, 2, -1))
    spec = im.specs.get(key) if isinstance(im.specs.get(key), RopeSpec) else rope_from_tables(*full, rows)
    if spec is None:
        raise im.error("has rotary tables that are not a RoPE pimc recognizes (theta^(-2i/d) frequencies)")
    im.found[key] = spec
    xs = shape_of(x)
    if len(xs) == 4:
        _, heads, s, d = xs
        x3 = im.reshape(im.transpose(x, (0, 2, 1, 3)), (s, heads, d))
    elif len(xs) == 3:
        heads = im.attr(node, "num_heads")
        if not heads:
            raise im.error("has a 3-D input without num_heads")
        s, d = xs[1], xs[2] // heads
        x3 = im.reshape(x, (s, heads, d))
    else:
        raise im.error(f"has input rank {len(xs)}")
    rd = im.attr(node, "rotary_embedding_dim", 0) or d
    if rd != spec.rotary_dim:
        raise im.error(f"rotates {rd} features but its tables cover {spec.rotary_dim}")
    y = im.op(llm.RopeOp, [x3, im.positions], shape_of(x3), theta=f64_attr(spec.theta), style=StringAttr(style), rotary_dim=i64_attr(rd))
    if len(xs) == 4:
        return [im.transpose(im.reshape(y, (1, s, heads, d)), (0, 2, 1, 3))]
    return [im.reshape(y, xs)]

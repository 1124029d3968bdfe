"""Reference semantics of the `llm` dialect on numpy arrays: the golden reference of pimc.

Each op's meaning is one numpy kernel in `KERNELS`, keyed by op name and called with the operand
arrays, the op's properties as plain Python values and the result types. The xDSL interpreter
functions below run `llm` ops through these kernels; device dialects that execute an `llm` op as a
library kernel (e.g. `cpu.kernel`) call the same table, so there is one definition of each op.
Floating point runs in float32; integer tensors stay integer (exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Attribute, Operation

from pimc.dialects import llm

Params = Mapping[str, Any]
Kernel = Callable[[tuple[np.ndarray, ...], Params, tuple[TensorType, ...]], np.ndarray]

KERNELS: dict[str, Kernel] = {}


def kernel(op: type[llm.LlmOp]):
    def register(fn: Kernel) -> Kernel:
        KERNELS[op.name] = fn
        return fn

    return register


def py_value(attr: Attribute) -> Any:
    """A property as a plain Python value (attributes without a plain form pass through)."""
    if isinstance(attr, IntegerAttr):
        return int(attr.value.data)
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, UnitAttr):
        return True
    if isinstance(attr, DenseArrayBase):
        return tuple(attr.get_values())
    if isinstance(attr, ArrayAttr):
        return [py_value(a) for a in attr.data]
    return attr


def op_params(op: Operation) -> dict[str, Any]:
    return {name: py_value(attr) for name, attr in op.properties.items()}


def numpy_dtype(typ: TensorType) -> np.dtype:
    elt = typ.element_type
    if isinstance(elt, IntegerType) and elt.width.data == 1:
        return np.dtype(bool)
    if isinstance(elt, IntegerType):
        return np.dtype(f"int{elt.width.data}") if elt.width.data in (8, 16, 32, 64) else np.dtype("int64")
    return np.dtype("float32")


# --------------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class QuantizedMatrix:
    """Integer codes of a [rows, k] matrix, grouped along k: value = (code - zero) * scale.

    codes, zero: int64 [R, G, group]/[R, G, 1]; scale: float32 [R, G, 1]. Per-tensor layout uses one
    group spanning the whole matrix (R = G = 1). Device simulators compute with these exact codes.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    shape: tuple[int, int]

    def dequantize(self) -> np.ndarray:
        rows, k = self.shape
        deq = ((self.codes - self.zero) * self.scale).astype(np.float32)
        return deq.reshape(rows, -1)[:, :k]  # drops group padding; per-tensor has none

    def signed_codes(self) -> np.ndarray:
        """code - zero as int64 [rows, k] (padding dropped)."""
        rows, k = self.shape
        return (self.codes - self.zero).reshape(rows, -1)[:, :k]


def quantize_matrix(matrix: np.ndarray, quant: llm.QuantAttr) -> QuantizedMatrix:
    """Round-to-nearest integer codes of `matrix` [rows, k] as `quant` describes (integer formats only)."""
    if not quant.integer_codes:
        raise ValueError(f"{quant.format.data} weights are not integer codes with group scales")
    w = matrix.astype(np.float32)
    rows, k = w.shape
    layout, fmt = quant.scale.data, quant.format.data
    group = k if layout != "per_group" else quant.group.data
    pad = (-k) % group
    wp = np.pad(w, ((0, 0), (0, pad))) if pad else w
    g = wp.reshape(rows, -1, group) if layout != "per_tensor" else wp.reshape(1, 1, -1)
    lo, hi = quant.levels
    zero = np.zeros(g.shape[:-1] + (1,), dtype=np.int64)
    if fmt == "binary":
        scale = np.abs(g).mean(axis=-1, keepdims=True)
        codes = np.where(g >= 0, 1.0, -1.0)
    elif fmt == "ternary":
        scale = np.abs(g).mean(axis=-1, keepdims=True)  # BitNet b1.58 absmean
        codes = np.clip(np.rint(g / np.where(scale == 0, 1.0, scale)), -1, 1)
    elif quant.symmetric.data:
        scale = np.abs(g).max(axis=-1, keepdims=True) / hi
        codes = np.clip(np.rint(g / np.where(scale == 0, 1.0, scale)), lo, hi)
    else:
        mn, mx = g.min(axis=-1, keepdims=True), g.max(axis=-1, keepdims=True)
        scale = (mx - mn) / hi
        safe = np.where(scale == 0, 1.0, scale)
        zero = np.rint(-mn / safe).astype(np.int64)
        codes = np.clip(np.rint(g / safe) + zero, lo, hi)
    return QuantizedMatrix(codes.astype(np.int64), scale.astype(np.float32), zero, (rows, k))


def fake_quantize(weight: np.ndarray, quant: llm.QuantAttr) -> np.ndarray:
    """Round-to-nearest quantize then dequantize `weight` [N, K] as `quant` stores it.

    Idempotent for the integer, binary and float formats: a weight already on the quantization grid is
    returned unchanged (up to float32). Ternary (BitNet b1.58 absmean) is not: a second pass keeps the
    codes but shrinks each group's scale to the mean |w| of the first pass's output.
    ggml block formats (Q4_1, Q8_0, TQ2_0 ...) name how an imported weight was stored; the weight
    store already holds gguf's dequantized values, so they are used as they are.
    """
    if quant.format.data in llm.GGML_FORMATS:
        return np.asarray(weight, dtype=np.float32)
    w = weight.astype(np.float32)
    if quant.format.data == "f16":
        return w.astype(np.float16).astype(np.float32)
    if quant.format.data == "bf16":  # round to nearest even on the upper 16 bits
        bits = w.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
        return rounded.astype(np.uint32).view(np.float32)
    return quantize_matrix(w, quant).dequantize()


# --------------------------------------------------------------------------- kernels


@kernel(llm.EmbeddingOp)
def _embedding(args, p, types):
    ids, table = args
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise ValueError(f"llm.embedding: token id out of range [0, {table.shape[0]})")
    return table[ids].astype(np.float32)


@kernel(llm.RMSNormOp)
def _rmsnorm(args, p, types):
    x, w = args
    ms = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True)
    return (x / np.sqrt(ms + np.float32(p["eps"])) * (w + np.float32(p.get("offset", 0.0)))).astype(np.float32)


@kernel(llm.LayerNormOp)
def _layernorm(args, p, types):
    x, w, *b = args
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(p["eps"])) * w
    return (y + b[0] if b else y).astype(np.float32)


@kernel(llm.LinearOp)
def _linear(args, p, types):
    x, w, *b = args
    if "wquant" in p:
        w = fake_quantize(w, p["wquant"])
    if "aquant" in p:  # dynamic activation quantization, per token row (or per tensor)
        x = fake_quantize(x.reshape(-1, x.shape[-1]), p["aquant"]).reshape(x.shape)
    y = np.matmul(x, w.T)
    return (y + b[0] if b else y).astype(np.float32)


@kernel(llm.MatmulOp)
def _matmul(args, p, types):
    return np.matmul(args[0], args[1])


def rope_tables(positions: np.ndarray, rotary_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [S, rotary_dim/2] of the rotation angles pos · theta^(-2i/d)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim))
    angles = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


@kernel(llm.RopeOp)
def _rope(args, p, types):
    x, pos = args
    rd = p["rotary_dim"]
    cos, sin = rope_tables(pos, rd, p["theta"])
    cos, sin = cos[:, None, :], sin[:, None, :]
    rot, rest = x[..., :rd], x[..., rd:]
    if p["style"] == "half":
        a, b = rot[..., : rd // 2], rot[..., rd // 2 :]
        out = np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    else:
        a, b = rot[..., 0::2], rot[..., 1::2]
        out = np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(rot.shape)
    return np.concatenate([out, rest], axis=-1).astype(np.float32)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    return e / np.sum(e, axis=axis, keepdims=True)


@kernel(llm.AttentionOp)
def _attention(args, p, types):
    q, k, v, pos = args
    group = p["heads"] // p["kv_heads"]
    k = np.repeat(k, group, axis=1)  # [T, H, D]
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("shd,thd->hst", q, k) * np.float32(p["scale"])
    keys = np.arange(k.shape[0])[None, :]
    visible = np.ones((q.shape[0], k.shape[0]), dtype=bool)
    if p.get("causal"):
        visible &= keys <= pos[:, None]
    if "window" in p:
        visible &= keys > pos[:, None] - p["window"]
    scores = np.where(visible[None], scores, -np.inf)
    probs = softmax(scores, axis=-1)
    return np.einsum("hst,thd->shd", probs, v).astype(np.float32)


@kernel(llm.SoftmaxOp)
def _softmax(args, p, types):
    return softmax(args[0], p["axis"]).astype(np.float32)


@kernel(llm.SiluOp)
def _silu(args, p, types):
    x = args[0]
    return (x / (1.0 + np.exp(-x))).astype(np.float32)


@kernel(llm.GeluOp)
def _gelu(args, p, types):
    x = args[0].astype(np.float64)
    if p["approximate"] == "tanh":
        y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    else:
        from math import erf

        y = 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))
    return y.astype(np.float32)


@kernel(llm.ReluOp)
def _relu(args, p, types):
    return np.maximum(args[0], 0)


@kernel(llm.Relu2Op)
def _relu2(args, p, types):
    return np.square(np.maximum(args[0], 0))


@kernel(llm.AddOp)
def _add(args, p, types):
    return np.add(args[0], args[1])


@kernel(llm.MulOp)
def _mul(args, p, types):
    return np.multiply(args[0], args[1])


@kernel(llm.ArgmaxOp)
def _argmax(args, p, types):
    return np.argmax(args[0], axis=p["axis"]).astype(np.int64)


@kernel(llm.ReshapeOp)
def _reshape(args, p, types):
    return args[0].reshape(types[0].get_shape())


@kernel(llm.TransposeOp)
def _transpose(args, p, types):
    return np.ascontiguousarray(np.transpose(args[0], p["perm"]))


@kernel(llm.ConcatOp)
def _concat(args, p, types):
    return np.concatenate(args, axis=p["axis"])


@kernel(llm.SliceOp)
def _slice(args, p, types):
    x = args[0]
    index = [slice(None)] * x.ndim
    index[p["axis"]] = slice(p["start"], p["end"], p.get("step", 1))
    return np.ascontiguousarray(x[tuple(index)])


def _exact(fn):
    """Evaluate a float function in float64 and round once to float32 (transcendentals match the
    correctly rounded results other runtimes produce more closely)."""
    return lambda x: fn(x.astype(np.float64)).astype(x.dtype) if x.dtype.kind == "f" else fn(x)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x) if x.size else x.astype(np.float64)


UNARY = {
    "neg": np.negative,
    "abs": np.abs,
    "exp": _exact(np.exp),
    "log": _exact(np.log),
    "sqrt": _exact(np.sqrt),
    "rsqrt": _exact(lambda x: 1.0 / np.sqrt(x)),
    "reciprocal": lambda x: np.reciprocal(x) if x.dtype.kind == "f" else 1 // x,
    "tanh": _exact(np.tanh),
    "sigmoid": _exact(lambda x: 1.0 / (1.0 + np.exp(-x))),
    "cos": _exact(np.cos),
    "sin": _exact(np.sin),
    "erf": _exact(_erf),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,  # halves to even, like ONNX Round
    "sign": np.sign,
    "not": np.logical_not,
    "isnan": np.isnan,
}


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C and ONNX), not numpy's floor."""
    q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
    return (q * np.sign(a) * np.sign(b)).astype(np.result_type(a, b))


BINARY = {
    "sub": np.subtract,
    "div": lambda a, b: np.divide(a, b) if a.dtype.kind == "f" else _int_div(a, b),
    "pow": lambda a, b: np.power(a, b) if a.dtype.kind == "f" else np.power(a, b).astype(a.dtype),
    "max": np.maximum,
    "min": np.minimum,
    "mod": np.fmod,  # sign of the dividend, as ONNX Mod with fmod = 1 and C
    "eq": np.equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "xor": np.logical_xor,
}


@kernel(llm.UnaryOp)
def _unary(args, p, types):
    return np.asarray(UNARY[p["fn"]](args[0])).astype(numpy_dtype(types[0]), copy=False)


@kernel(llm.BinaryOp)
def _binary(args, p, types):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(BINARY[p["fn"]](args[0], args[1])).astype(numpy_dtype(types[0]), copy=False)


@kernel(llm.SelectOp)
def _select(args, p, types):
    return np.where(*args).astype(numpy_dtype(types[0]), copy=False)


@kernel(llm.CastOp)
def _cast(args, p, types):
    x, dtype = args[0], numpy_dtype(types[0])
    if x.dtype.kind == "f" and dtype.kind in "iub" and dtype != bool:
        x = np.trunc(x)
    return x.astype(dtype)


REDUCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}


@kernel(llm.ReduceOp)
def _reduce(args, p, types):
    x = args[0]
    out = REDUCE[p["fn"]](x, axis=tuple(p["axes"]), keepdims=bool(p.get("keepdims")))
    return np.asarray(out).astype(numpy_dtype(types[0]), copy=False)


@kernel(llm.GatherOp)
def _gather(args, p, types):
    x, idx = args
    axis = p["axis"] % x.ndim
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"llm.gather: index out of range [-{n}, {n}) on axis {axis}")
    return np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)


@kernel(llm.BroadcastOp)
def _broadcast(args, p, types):
    return np.ascontiguousarray(np.broadcast_to(args[0], types[0].get_shape()))


@kernel(llm.EinsumOp)
def _einsum(args, p, types):
    return np.einsum(p["equation"], *args).astype(numpy_dtype(types[0]), copy=False)


# --------------------------------------------------------------------------- state


@dataclass
class RuntimeState:
    """What a program reads besides its arguments: the weight store and the KV caches."""

    weights: Mapping[str, np.ndarray]
    caches: dict[str, np.ndarray] = field(default_factory=dict)

    def weight(self, name: str, typ: TensorType) -> np.ndarray:
        if name not in self.weights:
            raise KeyError(f"weight '{name}' is not in the weight store")
        array = self.weights[name]
        if tuple(array.shape) != tuple(typ.get_shape()):
            raise ValueError(f"weight '{name}' has shape {list(array.shape)}, the IR expects {typ.get_shape()}")
        return array

    def cache(self, name: str, typ: TensorType) -> np.ndarray:
        if name not in self.caches:
            self.caches[name] = np.zeros(typ.get_shape(), dtype=numpy_dtype(typ))
        return self.caches[name]

    def append(self, name: str, rows: np.ndarray, positions: np.ndarray, typ: TensorType) -> np.ndarray:
        cache = self.cache(name, typ)
        if positions.size and (positions.min() < 0 or positions.max() >= cache.shape[0]):
            raise ValueError(
                f"KV cache '{name}': position {int(positions.max())} exceeds its capacity {cache.shape[0]}"
            )
        cache[positions] = rows
        return cache.copy()


STATEFUL_OPS = (llm.WeightOp.name, llm.KVCacheReadOp.name, llm.KVCacheAppendOp.name)
"""Ops whose result depends on `RuntimeState` rather than on their operands alone."""


def run_kernel(op_name: str, args: tuple, params: Params, result_types: tuple, state: RuntimeState) -> np.ndarray:
    """Execute one `llm` op by name; stateful ops use `state`."""
    if op_name == llm.WeightOp.name:
        return state.weight(params["name"], result_types[0])
    if op_name == llm.KVCacheReadOp.name:
        return state.cache(params["cache"], result_types[0]).copy()
    if op_name == llm.KVCacheAppendOp.name:
        return state.append(params["cache"], args[0], args[1], result_types[0])
    return KERNELS[op_name](args, params, result_types)


STATE_KEY = "state"


def set_state(interpreter: Interpreter, state: RuntimeState) -> None:
    interpreter.set_data(LlmFunctions, STATE_KEY, state)


def get_state(interpreter: Interpreter) -> RuntimeState:
    return interpreter.get_data(LlmFunctions, STATE_KEY, lambda: RuntimeState({}))


def _run(functions: InterpreterFunctions, interpreter: Interpreter, op: Operation, args: tuple) -> tuple:
    types = tuple(r.type for r in op.results)
    return (run_kernel(op.name, tuple(args), op_params(op), types, get_state(interpreter)),)


def run_fused_body(block, args: tuple, state: RuntimeState) -> np.ndarray:
    """A fused chain (`llm.fused` or a device op holding its body): its ops in order, on `args`."""
    values = dict(zip(block.args, args))
    for op in block.ops:
        if isinstance(op, llm.YieldOp):
            return values[op.value]
        types = tuple(r.type for r in op.results)
        values[op.results[0]] = run_kernel(op.name, tuple(values[v] for v in op.operands), op_params(op), types, state)
    raise ValueError("a fused body must end in llm.yield")


def _run_fused(functions: InterpreterFunctions, interpreter: Interpreter, op: llm.FusedOp, args: tuple) -> tuple:
    return (run_fused_body(op.body.block, tuple(args), get_state(interpreter)),)


_KERNEL_OPS = [op for op in llm.LLM_OPS if op not in (llm.FusedOp, llm.YieldOp)]

# One implementation serves every op: the kernel table holds the meaning (a fused op runs its body).
LlmFunctions = register_impls(
    type(
        "LlmFunctions",
        (InterpreterFunctions,),
        {
            "__doc__": "xDSL interpreter implementations of every `llm` op (through `KERNELS`).",
            **{f"run_{op.name.removeprefix('llm.')}": impl(op)(_run) for op in _KERNEL_OPS},
            "run_fused": impl(llm.FusedOp)(_run_fused),
        },
    )
)

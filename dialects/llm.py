"""The `llm` dialect: tensor-level SSA ops of decoder-only language models.

One op per model operator. Activations are `tensor<...xf32>` without a batch dimension
(`[seq, hidden]`, or `[seq, heads, head_dim]` around attention); token ids and positions are
`tensor<Sxi64>`. Weights are never inline: `llm.weight "name"` names an entry of the weight store.
The KV cache is named state (`cache = "..."`) that persists across calls of the module's functions.
Reference semantics (numpy) live beside this file in `llm_semantics.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.dialects.builtin import (
    I64,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    param_def,
    region_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.dialects.builtin import IntAttr
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import IsolatedFromAbove, IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

# --------------------------------------------------------------------------- attributes

GGML_FORMATS: dict[str, tuple[float, int, int]] = {
    "q4_0": (4.0, 32, 18),
    "q4_1": (4.0, 32, 20),
    "q5_0": (5.0, 32, 22),
    "q5_1": (5.0, 32, 24),
    "q8_0": (8.0, 32, 34),
    "q2_k": (2.0, 256, 84),
    "q3_k": (3.0, 256, 110),
    "q4_k": (4.0, 256, 144),
    "q5_k": (5.0, 256, 176),
    "q6_k": (6.0, 256, 210),
    "iq4_nl": (4.0, 32, 18),
    "iq4_xs": (4.0, 256, 136),
    "mxfp4": (4.0, 32, 17),
    "tq1_0": (1.6, 256, 54),
    "tq2_0": (2.0, 256, 66),
}
"""llama.cpp's block formats (ggml-common.h): code bits per weight, weights per block, bytes per block.

A block holds its codes and its own scales (and mins, sub-block scales), so a weight stored this way
takes exactly `bytes per block` for every `weights per block`: Q4_1 is 4-bit codes plus an f16 scale
and an f16 min per 32 weights, 20 bytes, 5.0 bits per weight. Their values are what gguf's dequantize
makes of the blocks; the weight store holds those values, so the reference computes with them as they
are (the format is not re-rounded) and the cost models see the stored bytes."""

QUANT_FORMATS = (
    {f"int{b}": float(b) for b in range(2, 9)}
    | {"binary": 1.0, "ternary": 1.6, "f16": 16.0, "bf16": 16.0}
    | {name: bits for name, (bits, _, _) in GGML_FORMATS.items()}
)
"""Weight code formats and their code bits per weight (ternary packs 5 trits per byte)."""

FLOAT_FORMATS = ("f16", "bf16")
"""Formats that store each weight as a narrower float: no scales."""

SCALE_LAYOUTS = ("per_group", "per_channel", "per_tensor")


@irdl_attr_definition
class QuantAttr(ParametrizedAttribute):
    """How a weight is stored: code format, quantization group along the input dimension, scales.

    `#llm.quant<int4, group = 32, scale = per_group, scale_bits = 16, symmetric = 1>`
    """

    name = "llm.quant"

    format: StringAttr = param_def()
    group: IntAttr = param_def()
    scale: StringAttr = param_def()
    scale_bits: IntAttr = param_def()
    symmetric: IntAttr = param_def()

    def __init__(
        self,
        format: str,
        group: int,
        scale: str = "per_group",
        scale_bits: int = 16,
        symmetric: bool = True,
    ):
        super().__init__(
            StringAttr(format), IntAttr(group), StringAttr(scale), IntAttr(scale_bits), IntAttr(int(symmetric))
        )

    @property
    def code_bits(self) -> float:
        return QUANT_FORMATS[self.format.data]

    @property
    def integer_codes(self) -> bool:
        """Whether the weight is integer codes times per-group scales that devices compute with
        (`quantize_matrix`); f16/bf16 and ggml block formats are not."""
        return self.format.data not in FLOAT_FORMATS and self.format.data not in GGML_FORMATS

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight including scales, for a row of `group` weights (ggml: exact)."""
        return self.storage_bytes((1, self.group.data)) * 8 / self.group.data

    @property
    def levels(self) -> tuple[int, int]:
        """Smallest and largest integer code."""
        fmt = self.format.data
        if fmt == "binary":
            return (-1, 1)
        if fmt == "ternary":
            return (-1, 1)
        bits = int(self.code_bits)
        if self.symmetric.data:
            return (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)
        return (0, 2**bits - 1)

    def storage_bytes(self, shape: Sequence[int]) -> float:
        """Bytes of codes plus scales (and zero points when asymmetric) for a [N, K] weight."""
        numel = math.prod(shape)
        if self.format.data in GGML_FORMATS:  # whole blocks, scales inside
            _, block, block_bytes = GGML_FORMATS[self.format.data]
            return math.prod(shape[:-1]) * math.ceil(shape[-1] / block) * block_bytes
        groups = self.scale_count(shape)
        per_scale = self.scale_bits.data / 8 * (1 if self.symmetric.data else 2)
        return numel * self.code_bits / 8 + groups * per_scale

    def scale_count(self, shape: Sequence[int]) -> int:
        layout = self.scale.data
        if self.format.data in FLOAT_FORMATS:
            return 0
        if layout == "per_tensor":
            return 1
        rows = math.prod(shape[:-1])
        if layout == "per_channel":
            return rows
        return rows * math.ceil(shape[-1] / self.group.data)

    def verify(self) -> None:
        if self.format.data not in QUANT_FORMATS:
            raise VerifyException(
                f"#llm.quant: unknown format '{self.format.data}' (expected one of {', '.join(QUANT_FORMATS)})"
            )
        if self.scale.data not in SCALE_LAYOUTS:
            raise VerifyException(f"#llm.quant: unknown scale layout '{self.scale.data}' (expected {SCALE_LAYOUTS})")
        if self.group.data <= 0:
            raise VerifyException(f"#llm.quant: group must be positive, got {self.group.data}")
        if self.format.data in GGML_FORMATS and self.group.data != GGML_FORMATS[self.format.data][1]:
            block = GGML_FORMATS[self.format.data][1]
            raise VerifyException(f"#llm.quant: {self.format.data} blocks hold {block} weights, got group = {self.group.data}")
        if self.symmetric.data not in (0, 1):
            raise VerifyException(f"#llm.quant: symmetric must be 0 or 1, got {self.symmetric.data}")
        if self.scale_bits.data not in (8, 16, 32):
            raise VerifyException(f"#llm.quant: scale_bits must be 8, 16 or 32, got {self.scale_bits.data}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            fmt = parser.parse_identifier()
            fields = {"group": "32", "scale": "per_group", "scale_bits": "16", "symmetric": "1"}
            while parser.parse_optional_punctuation(",") is not None:
                key = parser.parse_identifier()
                if key not in fields:
                    parser.raise_error(f"#llm.quant: unknown field '{key}'")
                parser.parse_punctuation("=")
                if key == "scale":
                    fields[key] = parser.parse_identifier()
                else:
                    fields[key] = str(parser.parse_integer())
        return (
            StringAttr(fmt),
            IntAttr(int(fields["group"])),
            StringAttr(fields["scale"]),
            IntAttr(int(fields["scale_bits"])),
            IntAttr(int(fields["symmetric"])),
        )

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(
            f"<{self.format.data}, group = {self.group.data}, scale = {self.scale.data}, "
            f"scale_bits = {self.scale_bits.data}, symmetric = {self.symmetric.data}>"
        )


# --------------------------------------------------------------------------- helpers


def tensor_shape(value: SSAValue | Attribute) -> tuple[int, ...]:
    typ = value.type if isinstance(value, SSAValue) else value
    assert isinstance(typ, TensorType)
    return tuple(typ.get_shape())


def _fail(op: Operation, message: str) -> None:
    raise VerifyException(f"{op.name}: {message}")


def _is_int(value: SSAValue) -> bool:
    return isinstance(value.type, TensorType) and isinstance(value.type.element_type, IntegerType)


def _require_rank(op: Operation, what: str, value: SSAValue, rank: int) -> tuple[int, ...]:
    shape = tensor_shape(value)
    if len(shape) != rank:
        _fail(op, f"{what} must have rank {rank}, got shape {list(shape)}")
    return shape


def _require_positions(op: Operation, pos: SSAValue, seq: int) -> None:
    shape = tensor_shape(pos)
    if not _is_int(pos) or pos.type.element_type != i64 or shape != (seq,):
        _fail(op, f"positions must be tensor<{seq}xi64>, got {pos.type}")


def _require_result(op: Operation, expected: Sequence[int]) -> None:
    got = tensor_shape(op.results[0])
    if got != tuple(expected):
        _fail(op, f"result shape {list(got)} does not match expected {list(expected)}")


def broadcast_shape(op: Operation, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    out = []
    for x, y in zip(reversed((1,) * (len(b) - len(a)) + tuple(a)), reversed((1,) * (len(a) - len(b)) + tuple(b))):
        if x != y and 1 not in (x, y):
            _fail(op, f"operand shapes {list(a)} and {list(b)} do not broadcast")
        out.append(max(x, y))
    return tuple(reversed(out))


ANY_TENSOR = TensorType


class LlmOp(IRDLOperation):
    """Common base: properties print inside the attribute dictionary."""

    irdl_options = (ParsePropInAttrDict(),)


# --------------------------------------------------------------------------- ops


@irdl_op_definition
class WeightOp(LlmOp):
    """A constant tensor read from the weight store by name."""

    name = "llm.weight"
    weight = prop_def(StringAttr, prop_name="name")
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$name attr-dict `:` type($result)"

    def __init__(self, name: str, typ: TensorType):
        super().__init__(properties={"name": StringAttr(name)}, result_types=[typ])


@irdl_op_definition
class EmbeddingOp(LlmOp):
    """Rows of `table` [V, D] selected by integer `ids` [S]."""

    name = "llm.embedding"
    ids = operand_def(ANY_TENSOR)
    table = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$ids `,` $table attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if not _is_int(self.ids) or len(tensor_shape(self.ids)) != 1:
            _fail(self, f"ids must be a rank-1 integer tensor, got {self.ids.type}")
        vocab, dim = _require_rank(self, "table", self.table, 2)
        _require_result(self, (tensor_shape(self.ids)[0], dim))


@irdl_op_definition
class RMSNormOp(LlmOp):
    """x / sqrt(mean(x², last axis) + eps) * (weight + offset)."""

    name = "llm.rmsnorm"
    input = operand_def(ANY_TENSOR)
    weight = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    eps = prop_def(FloatAttr)
    offset = opt_prop_def(FloatAttr)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $weight attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        if tensor_shape(self.weight) != shape[-1:]:
            _fail(self, f"weight shape {list(tensor_shape(self.weight))} must be [{shape[-1]}]")
        if self.eps.value.data <= 0:
            _fail(self, "eps must be positive")
        _require_result(self, shape)


@irdl_op_definition
class LayerNormOp(LlmOp):
    """(x - mean) / sqrt(var + eps) * weight (+ bias), over the last axis."""

    name = "llm.layernorm"
    input = operand_def(ANY_TENSOR)
    weight = operand_def(ANY_TENSOR)
    bias = opt_operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    eps = prop_def(FloatAttr)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        for what, value in (("weight", self.weight), ("bias", self.bias)):
            if value is not None and tensor_shape(value) != shape[-1:]:
                _fail(self, f"{what} shape {list(tensor_shape(value))} must be [{shape[-1]}]")
        if self.eps.value.data <= 0:
            _fail(self, "eps must be positive")
        _require_result(self, shape)


@irdl_op_definition
class LinearOp(LlmOp):
    """x [..., K] @ weight[N, K]ᵀ (+ bias [N]).

    `wquant` says how the weight is stored; `aquant` quantizes the input dynamically (scales from each
    token row for per_channel, from the whole input for per_tensor) before the product.
    """

    name = "llm.linear"
    input = operand_def(ANY_TENSOR)
    weight = operand_def(ANY_TENSOR)
    bias = opt_operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    wquant = opt_prop_def(QuantAttr)
    aquant = opt_prop_def(QuantAttr)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        xs = tensor_shape(self.input)
        n, k = _require_rank(self, "weight", self.weight, 2)
        if not xs or xs[-1] != k:
            _fail(self, f"input inner dimension {xs[-1:] or '?'} does not match weight [N={n}, K={k}]")
        if self.bias is not None and tensor_shape(self.bias) != (n,):
            _fail(self, f"bias shape {list(tensor_shape(self.bias))} must be [{n}]")
        if self.wquant is not None and self.wquant.format.data in GGML_FORMATS and k % self.wquant.group.data:
            _fail(self, f"K={k} is not a multiple of the {self.wquant.format.data} block of {self.wquant.group.data} weights")
        _require_result(self, (*xs[:-1], n))


@irdl_op_definition
class MatmulOp(LlmOp):
    """Batched product of two activations: a [..., M, K] @ b [..., K, N]."""

    name = "llm.matmul"
    lhs = operand_def(ANY_TENSOR)
    rhs = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        a, b = tensor_shape(self.lhs), tensor_shape(self.rhs)
        if len(a) < 2 or len(b) < 2:
            _fail(self, f"operands must have rank >= 2, got {list(a)} and {list(b)}")
        if a[-1] != b[-2]:
            _fail(self, f"inner dimensions differ: {list(a)} @ {list(b)}")
        batch = broadcast_shape(self, a[:-2], b[:-2])
        _require_result(self, (*batch, a[-2], b[-1]))


@irdl_op_definition
class RopeOp(LlmOp):
    """Rotary position embedding of x [S, H, D] at integer positions [S].

    style "half" rotates (x[:d/2], x[d/2:]) pairs (Hugging Face); "interleaved" rotates (x[2i], x[2i+1])
    pairs (GGUF/Meta). Only the first `rotary_dim` features rotate.
    """

    name = "llm.rope"
    input = operand_def(ANY_TENSOR)
    positions = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    theta = prop_def(FloatAttr)
    style = prop_def(StringAttr)
    rotary_dim = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$input `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        s, h, d = _require_rank(self, "input", self.input, 3)
        _require_positions(self, self.positions, s)
        if self.style.data not in ("half", "interleaved"):
            _fail(self, f"style must be 'half' or 'interleaved', got '{self.style.data}'")
        rd = self.rotary_dim.value.data
        if rd <= 0 or rd > d or rd % 2:
            _fail(self, f"rotary_dim {rd} must be even and in (0, {d}]")
        if self.theta.value.data <= 0:
            _fail(self, "theta must be positive")
        _require_result(self, (s, h, d))


@irdl_op_definition
class AttentionOp(LlmOp):
    """softmax(q kᵀ · scale + mask) v per head; kv heads are shared by heads/kv_heads query heads.

    q [S, H, D] at positions [S]; k, v [T, KV, D] where key j sits at position j. With `causal`, query
    i sees keys j <= positions[i] (so unwritten KV-cache slots beyond the current position are
    masked); with `window` w also j > positions[i] - w.
    """

    name = "llm.attention"
    query = operand_def(ANY_TENSOR)
    key = operand_def(ANY_TENSOR)
    value = operand_def(ANY_TENSOR)
    positions = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    heads = prop_def(IntegerAttr[I64])
    kv_heads = prop_def(IntegerAttr[I64])
    head_dim = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr)
    causal = opt_prop_def(UnitAttr)
    window = opt_prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$query `,` $key `,` $value `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        heads, kv_heads, dim = (self.heads.value.data, self.kv_heads.value.data, self.head_dim.value.data)
        s, h, d = _require_rank(self, "query", self.query, 3)
        if (h, d) != (heads, dim):
            _fail(self, f"query shape {[s, h, d]} does not match heads={heads}, head_dim={dim}")
        if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
            _fail(self, f"heads={heads} must be a positive multiple of kv_heads={kv_heads}")
        k = _require_rank(self, "key", self.key, 3)
        if k[1:] != (kv_heads, dim) or tensor_shape(self.value) != k:
            _fail(self, f"key/value shapes {list(k)}, {list(tensor_shape(self.value))} must be [T, {kv_heads}, {dim}]")
        _require_positions(self, self.positions, s)
        if self.window is not None and self.window.value.data <= 0:
            _fail(self, "window must be positive")
        _require_result(self, (s, heads, dim))


class _AxisOp(LlmOp):
    axis = prop_def(IntegerAttr[I64])

    def checked_axis(self, rank: int) -> int:
        axis = self.axis.value.data
        if not -rank <= axis < rank:
            _fail(self, f"axis {axis} out of range for rank {rank}")
        return axis % rank


@irdl_op_definition
class SoftmaxOp(_AxisOp):
    """exp(x - max) / sum(exp(x - max)) along `axis`."""

    name = "llm.softmax"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        self.checked_axis(len(shape))
        _require_result(self, shape)


class _UnaryOp(LlmOp):
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.input.type != self.result.type:
            _fail(self, f"result type {self.result.type} must equal input type {self.input.type}")


@irdl_op_definition
class SiluOp(_UnaryOp):
    """x · sigmoid(x)."""

    name = "llm.silu"


@irdl_op_definition
class GeluOp(_UnaryOp):
    """Gaussian error linear unit; `approximate = "tanh"` is GPT-2's gelu_new."""

    name = "llm.gelu"
    approximate = prop_def(StringAttr)

    def verify_(self) -> None:
        super().verify_()
        if self.approximate.data not in ("none", "tanh"):
            _fail(self, f"approximate must be 'none' or 'tanh', got '{self.approximate.data}'")


@irdl_op_definition
class ReluOp(_UnaryOp):
    """max(x, 0)."""

    name = "llm.relu"


@irdl_op_definition
class Relu2Op(_UnaryOp):
    """max(x, 0)² (BitNet's squared ReLU)."""

    name = "llm.relu2"


class _BinaryOp(LlmOp):
    lhs = operand_def(ANY_TENSOR)
    rhs = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.lhs.type.element_type != self.rhs.type.element_type:
            _fail(self, f"element types differ: {self.lhs.type} and {self.rhs.type}")
        _require_result(self, broadcast_shape(self, tensor_shape(self.lhs), tensor_shape(self.rhs)))
        if self.result.type.element_type != self.lhs.type.element_type:
            _fail(self, "result element type must equal the operands'")


@irdl_op_definition
class AddOp(_BinaryOp):
    """Elementwise sum with numpy broadcasting (integer-exact on integer tensors)."""

    name = "llm.add"


@irdl_op_definition
class MulOp(_BinaryOp):
    """Elementwise product with numpy broadcasting (integer-exact on integer tensors)."""

    name = "llm.mul"


class _CacheOp(LlmOp):
    cache = prop_def(StringAttr)


@irdl_op_definition
class KVCacheReadOp(_CacheOp):
    """The whole named KV cache [capacity, KV, D]; slots never written read as zeros."""

    name = "llm.kv_cache_read"
    result = result_def(ANY_TENSOR)
    assembly_format = "attr-dict `:` type($result)"

    def verify_(self) -> None:
        _require_rank(self, "result", self.result, 3)


@irdl_op_definition
class KVCacheAppendOp(_CacheOp):
    """Write rows [S, KV, D] into the named cache at slots `positions`; returns the updated cache.

    The cache persists across calls (prefill, then decode steps) until the program is reset.
    """

    name = "llm.kv_cache_append"
    input = operand_def(ANY_TENSOR)
    positions = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    assembly_format = "$input `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        s, kv, d = _require_rank(self, "input", self.input, 3)
        _require_positions(self, self.positions, s)
        c = _require_rank(self, "result", self.result, 3)
        if c[1:] != (kv, d) or c[0] < s:
            _fail(self, f"cache shape {list(c)} cannot hold rows of shape {[s, kv, d]}")


@irdl_op_definition
class ArgmaxOp(_AxisOp):
    """Index of the largest element along `axis` (first on ties), as i64."""

    name = "llm.argmax"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        axis = self.checked_axis(len(shape))
        if self.result.type.element_type != i64:
            _fail(self, "result must be an i64 tensor")
        _require_result(self, shape[:axis] + shape[axis + 1 :])


@irdl_op_definition
class ReshapeOp(LlmOp):
    """Same elements in row-major order, new static shape (the result type)."""

    name = "llm.reshape"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        a, b = tensor_shape(self.input), tensor_shape(self.result)
        if math.prod(a) != math.prod(b):
            _fail(self, f"cannot reshape {list(a)} ({math.prod(a)} elements) to {list(b)}")
        if self.input.type.element_type != self.result.type.element_type:
            _fail(self, "element type must not change")


@irdl_op_definition
class TransposeOp(LlmOp):
    """Permute axes: result axis i is input axis perm[i]."""

    name = "llm.transpose"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    perm = prop_def(DenseArrayBase)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        perm = tuple(self.perm.get_values())
        if sorted(perm) != list(range(len(shape))):
            _fail(self, f"perm {list(perm)} is not a permutation of {len(shape)} axes")
        _require_result(self, tuple(shape[p] for p in perm))


@irdl_op_definition
class ConcatOp(_AxisOp):
    """Join tensors along `axis`."""

    name = "llm.concat"
    inputs = var_operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if not self.inputs:
            _fail(self, "needs at least one input")
        shapes = [tensor_shape(v) for v in self.inputs]
        axis = self.checked_axis(len(shapes[0]))
        for s in shapes:
            if len(s) != len(shapes[0]) or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :]:
                _fail(self, f"input shapes {[list(s) for s in shapes]} differ off axis {axis}")
        expected = list(shapes[0])
        expected[axis] = sum(s[axis] for s in shapes)
        _require_result(self, expected)


@irdl_op_definition
class SliceOp(_AxisOp):
    """Elements start, start + step, ... below end (exclusive) along `axis` (step defaults to 1)."""

    name = "llm.slice"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    start = prop_def(IntegerAttr[I64])
    end = prop_def(IntegerAttr[I64])
    step = opt_prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        axis = self.checked_axis(len(shape))
        start, end = self.start.value.data, self.end.value.data
        step = self.step.value.data if self.step is not None else 1
        if not 0 <= start < end <= shape[axis]:
            _fail(self, f"range [{start}, {end}) is not inside axis {axis} of size {shape[axis]}")
        if step <= 0:
            _fail(self, f"step must be positive, got {step}")
        expected = list(shape)
        expected[axis] = len(range(start, end, step))
        _require_result(self, expected)


FUSED_PATTERNS = ("linear_act", "norm_linear", "gated_mlp", "attention_block", "tphs_attention")
"""What a fused chain computes (the `fuse` pass names the pattern it matched)."""


@irdl_op_definition
class FusedOp(LlmOp):
    """A chain of `llm` ops run as one kernel whose intermediates stay on chip: the body's ops on the
    block arguments (the operands, weights included), its `llm.yield` value the result."""

    name = "llm.fused"
    inputs = var_operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    body = region_def("single_block")
    pattern = prop_def(StringAttr)
    traits = traits_def(IsolatedFromAbove())
    assembly_format = "$inputs attr-dict `:` functional-type($inputs, $result) $body"

    def verify_(self) -> None:
        if self.pattern.data not in FUSED_PATTERNS:
            _fail(self, f"unknown pattern '{self.pattern.data}' (expected one of {', '.join(FUSED_PATTERNS)})")
        block = self.body.block
        if tuple(a.type for a in block.args) != tuple(v.type for v in self.inputs):
            _fail(self, "block argument types must equal the operand types")
        last = block.last_op
        if not isinstance(last, YieldOp) or last.value.type != self.result.type:
            _fail(self, f"the body must end in llm.yield of the result type {self.result.type}")
        for op in block.ops:
            if op is not last and (not isinstance(op, LlmOp) or isinstance(op, (WeightOp, FusedOp))):
                _fail(self, f"the body holds only llm compute ops, got {op.name}")


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The value a fused body (of `llm.fused` or a device's fused kernel) produces."""

    name = "llm.yield"
    value = operand_def(ANY_TENSOR)
    traits = traits_def(IsTerminator(), Pure())
    assembly_format = "$value attr-dict `:` type($value)"
# --------------------------------------------------------------------------- generic ops
# What an importer (ONNX) cannot raise into the model-level ops above stays as these generic
# elementwise, reduction and shape ops, so nothing a graph computes is ever dropped.

UNARY_FNS = (
    "neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "cos", "sin", "erf",
    "floor", "ceil", "round", "sign", "not", "isnan",
)
"""Functions of `llm.unary` (numpy meaning; `not` on i1, `round` halves to even as ONNX does; `isnan`
gives i1, every other function keeps the input type)."""

BINARY_ARITH_FNS = ("sub", "div", "pow", "max", "min", "mod")
BINARY_COMPARE_FNS = ("eq", "lt", "le", "gt", "ge")
BINARY_LOGIC_FNS = ("and", "or", "xor")
BINARY_FNS = BINARY_ARITH_FNS + BINARY_COMPARE_FNS + BINARY_LOGIC_FNS
"""Functions of `llm.binary`: arithmetic keeps the element type, comparisons and logic give i1."""

REDUCE_FNS = ("sum", "mean", "max", "min", "prod")


def _require_elements(op: Operation, value: SSAValue, element: Attribute, what: str) -> None:
    if value.type.element_type != element:
        _fail(op, f"{what} must have element type {element}, got {value.type}")


@irdl_op_definition
class UnaryOp(LlmOp):
    """An elementwise function `fn` of one tensor (one of `UNARY_FNS`)."""

    name = "llm.unary"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    fn = prop_def(StringAttr)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.fn.data not in UNARY_FNS:
            _fail(self, f"unknown function '{self.fn.data}' (expected one of {', '.join(UNARY_FNS)})")
        if self.fn.data == "isnan":
            _require_elements(self, self.result, i1, "the result of isnan")
            _require_result(self, tensor_shape(self.input))
        elif self.input.type != self.result.type:
            _fail(self, f"result type {self.result.type} must equal input type {self.input.type}")


@irdl_op_definition
class BinaryOp(LlmOp):
    """An elementwise function `fn` of two tensors with numpy broadcasting (one of `BINARY_FNS`)."""

    name = "llm.binary"
    lhs = operand_def(ANY_TENSOR)
    rhs = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    fn = prop_def(StringAttr)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        fn = self.fn.data
        if fn not in BINARY_FNS:
            _fail(self, f"unknown function '{fn}' (expected one of {', '.join(BINARY_FNS)})")
        if self.lhs.type.element_type != self.rhs.type.element_type:
            _fail(self, f"element types differ: {self.lhs.type} and {self.rhs.type}")
        if fn in BINARY_LOGIC_FNS:
            _require_elements(self, self.lhs, i1, "operands of a logic function")
        element = self.lhs.type.element_type if fn in BINARY_ARITH_FNS else i1
        _require_elements(self, self.result, element, "the result")
        _require_result(self, broadcast_shape(self, tensor_shape(self.lhs), tensor_shape(self.rhs)))


@irdl_op_definition
class SelectOp(LlmOp):
    """`lhs` where `condition` (i1) holds, else `rhs`; all three broadcast together."""

    name = "llm.select"
    condition = operand_def(ANY_TENSOR)
    lhs = operand_def(ANY_TENSOR)
    rhs = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$condition `,` $lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        _require_elements(self, self.condition, i1, "condition")
        if self.lhs.type.element_type != self.rhs.type.element_type:
            _fail(self, f"element types differ: {self.lhs.type} and {self.rhs.type}")
        _require_elements(self, self.result, self.lhs.type.element_type, "the result")
        shape = broadcast_shape(self, tensor_shape(self.condition), tensor_shape(self.lhs))
        _require_result(self, broadcast_shape(self, shape, tensor_shape(self.rhs)))


@irdl_op_definition
class CastOp(LlmOp):
    """The same values converted to the result's element type (floats to integers truncate toward zero)."""

    name = "llm.cast"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        _require_result(self, tensor_shape(self.input))


@irdl_op_definition
class ReduceOp(LlmOp):
    """Reduce `axes` with `fn` (one of `REDUCE_FNS`); `keepdims` keeps them as size-1 axes."""

    name = "llm.reduce"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    fn = prop_def(StringAttr)
    axes = prop_def(DenseArrayBase)
    keepdims = opt_prop_def(UnitAttr)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.fn.data not in REDUCE_FNS:
            _fail(self, f"unknown function '{self.fn.data}' (expected one of {', '.join(REDUCE_FNS)})")
        shape = tensor_shape(self.input)
        axes = tuple(self.axes.get_values())
        if not axes or len(set(axes)) != len(axes) or any(not 0 <= a < len(shape) for a in axes):
            _fail(self, f"axes {list(axes)} must be distinct axes of a rank-{len(shape)} input")
        if self.keepdims is not None:
            expected = [1 if i in axes else n for i, n in enumerate(shape)]
        else:
            expected = [n for i, n in enumerate(shape) if i not in axes]
        _require_result(self, expected)


@irdl_op_definition
class GatherOp(_AxisOp):
    """Entries of `input` along `axis` at integer `indices` (negative counts from the end)."""

    name = "llm.gather"
    input = operand_def(ANY_TENSOR)
    indices = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $indices attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        shape = tensor_shape(self.input)
        axis = self.checked_axis(len(shape))
        if not _is_int(self.indices) or self.indices.type.element_type == i1:
            _fail(self, f"indices must be an integer tensor, got {self.indices.type}")
        _require_result(self, shape[:axis] + tensor_shape(self.indices) + shape[axis + 1 :])


@irdl_op_definition
class BroadcastOp(LlmOp):
    """`input` repeated along size-1 (or missing leading) axes to the result's shape."""

    name = "llm.broadcast"
    input = operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        out = tensor_shape(self.result)
        if broadcast_shape(self, tensor_shape(self.input), out) != out:
            _fail(self, f"cannot broadcast {list(tensor_shape(self.input))} to {list(out)}")
        _require_elements(self, self.result, self.input.type.element_type, "the result")


@irdl_op_definition
class EinsumOp(LlmOp):
    """Sum of products over the indices an Einstein `equation` ("bhd,hdk->bk") leaves out."""

    name = "llm.einsum"
    inputs = var_operand_def(ANY_TENSOR)
    result = result_def(ANY_TENSOR)
    equation = prop_def(StringAttr)
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        sizes = einsum_sizes(self.equation.data, [tensor_shape(v) for v in self.inputs])
        if isinstance(sizes, str):
            _fail(self, sizes)
        outputs = self.equation.data.replace(" ", "").split("->")[1]
        _require_result(self, [sizes[c] for c in outputs])


def einsum_sizes(equation: str, shapes: Sequence[Sequence[int]]) -> dict[str, int] | str:
    """Size of every index of an explicit einsum `equation` over operands of `shapes`, or what is wrong."""
    eq = equation.replace(" ", "")
    if eq.count("->") != 1 or "." in eq:
        return f"equation '{equation}' must be explicit ('ab,bc->ac') without ellipsis"
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        return f"equation '{equation}' names {len(terms)} operands, got {len(shapes)}"
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape) or not term.isalpha():
            return f"term '{term}' does not index an operand of shape {list(shape)}"
        for c, n in zip(term, shape):
            if sizes.setdefault(c, n) != n and 1 not in (n, sizes[c]):
                return f"index '{c}' has sizes {sizes[c]} and {n}"
            sizes[c] = max(sizes[c], n)
    if not out.isalpha() and out or any(c not in sizes for c in out) or len(set(out)) != len(out):
        return f"output '{out}' must name distinct indices of the inputs"
    return sizes


LLM_OPS = [
    WeightOp,
    EmbeddingOp,
    RMSNormOp,
    LayerNormOp,
    LinearOp,
    MatmulOp,
    RopeOp,
    AttentionOp,
    SoftmaxOp,
    SiluOp,
    GeluOp,
    ReluOp,
    Relu2Op,
    AddOp,
    MulOp,
    KVCacheReadOp,
    KVCacheAppendOp,
    ArgmaxOp,
    ReshapeOp,
    TransposeOp,
    ConcatOp,
    SliceOp,
    FusedOp,
    YieldOp,
    UnaryOp,
    BinaryOp,
    SelectOp,
    CastOp,
    ReduceOp,
    GatherOp,
    BroadcastOp,
    EinsumOp,
]

LLM = Dialect("llm", LLM_OPS, [QuantAttr])


def f64_attr(value: float) -> FloatAttr:
    """Float properties are f64 so that printing and parsing them is lossless."""
    return FloatAttr(float(value), f64)


def i64_attr(value: int) -> IntegerAttr:
    return IntegerAttr(int(value), i64)

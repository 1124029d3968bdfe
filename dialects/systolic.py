"""The `systolic` dialect: the program a TPU-like output-stationary array and its vector unit run.

- `systolic.attention`: QKᵀ and PV as integer GEMMs on the `rows` x `cols` array with
  `operand_bits` operands (the query heads sharing a KV head stacked as GEMM rows), softmax on the
  vector unit; K and V come from wherever the operands live (the KV cache in memory during decode).
- `systolic.gemm`: a linear whose weights stream from memory through the array, one product per
  weight-scale group of integer codes (float operands take several passes).
- `systolic.vector`: any other `llm` operator, run by the vector unit with the reference kernel.

Every op carries the `Scheduled` placement; the array ops carry the geometry they were lowered for.
Semantics live in `systolic_semantics.py`.
"""

from __future__ import annotations

from xdsl.dialects.builtin import I64, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, TensorType, UnitAttr
from xdsl.ir import Dialect
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm import QuantAttr, tensor_shape
from pimc.dialects.llm_semantics import KERNELS, STATEFUL_OPS
from pimc.dialects.sched import ScheduledOp


def _int(attr: IntegerAttr) -> int:
    return attr.value.data


class ArrayOp(ScheduledOp):
    rows = prop_def(IntegerAttr[I64])
    cols = prop_def(IntegerAttr[I64])
    operand_bits = prop_def(IntegerAttr[I64])

    def verify_array(self) -> None:
        if _int(self.rows) <= 0 or _int(self.cols) <= 0 or not 1 <= _int(self.operand_bits) <= 32:
            raise VerifyException(f"{self.name}: array must be positive with 1..32-bit operands")


@irdl_op_definition
class AttentionOp(ArrayOp):
    """softmax(q kᵀ · scale + mask) v per head with integer operands on the array (see llm.attention)."""

    name = "systolic.attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    positions = operand_def(TensorType)
    result = result_def(TensorType)
    heads = prop_def(IntegerAttr[I64])
    kv_heads = prop_def(IntegerAttr[I64])
    head_dim = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr)
    causal = opt_prop_def(UnitAttr)
    window = opt_prop_def(IntegerAttr[I64])
    assembly_format = "$query `,` $key `,` $value `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self.verify_array()
        h, kv, d = _int(self.heads), _int(self.kv_heads), _int(self.head_dim)
        s = tensor_shape(self.query)
        if len(s) != 3 or s[1:] != (h, d) or h % kv:
            raise VerifyException(f"systolic.attention: query {list(s)} must be [S, {h}, {d}] with heads a multiple of kv_heads {kv}")
        k = tensor_shape(self.key)
        if len(k) != 3 or k[1:] != (kv, d) or tensor_shape(self.value) != k:
            raise VerifyException(f"systolic.attention: key/value must be [T, {kv}, {d}]")
        if tensor_shape(self.result) != s:
            raise VerifyException(f"systolic.attention: result must be {list(s)}")


@irdl_op_definition
class GemmOp(ArrayOp):
    """y = x [..., K] · w [N, K]ᵀ (+ bias) with the weights streamed through the array."""

    name = "systolic.gemm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    wquant = opt_prop_def(QuantAttr)
    aquant = opt_prop_def(QuantAttr)
    assembly_format = "$input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self.verify_array()
        w = tensor_shape(self.weight)
        xs = tensor_shape(self.input)
        if len(w) != 2 or not xs or xs[-1] != w[1] or tensor_shape(self.result) != (*xs[:-1], w[0]):
            raise VerifyException(f"systolic.gemm: shapes {list(xs)} x {list(w)}ᵀ -> {list(tensor_shape(self.result))} do not match")


@irdl_op_definition
class VectorOp(ScheduledOp):
    """Run the `llm` operator `kernel` with `params` on the vector unit."""

    name = "systolic.vector"
    args = var_operand_def(TensorType)
    result = result_def(TensorType)
    kernel = prop_def(StringAttr)
    params = prop_def(DictionaryAttr)
    assembly_format = "$kernel `(` $args `)` attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        name = self.kernel.data
        if name not in KERNELS and name not in STATEFUL_OPS:
            raise VerifyException(f"systolic.vector: no kernel implements '{name}'")


SYSTOLIC = Dialect("systolic", [AttentionOp, GemmOp, VectorOp], [])

"""The `fpga` dialect: the program a MEADOW-style FPGA accelerator runs, one op per operator.

- `fpga.gemm`: a W8A8 linear on the parallel-MAC PEs, output-stationary. Its tile loop is attributes:
  `tile_m` x `tile_n` outputs per weight/input tile held double-buffered on chip (`buffer_bytes`),
  `tile_k` products per PE per cycle, `cycles` of the whole loop; DMA bytes in and out.
- `fpga.unpack`: a packed weight expanded by the unpack unit (unique-chunk table + ID stream) on its
  way from the DMA to the PEs; its time is the `fpga.gemm` stage it feeds.
- `fpga.tphs`: attention as the token-parallel head-sequential pipeline (QKᵀ on the parallel PEs →
  softmax unit → SV on the broadcast PEs, head after head); scores never leave the chip.
- `fpga.tphs_q`: the same pipeline starting at the Q projection (x · Wq_hᵀ per head on the parallel PEs,
  then rope when the model has it): Q never leaves the chip either.
- `fpga.dma_in`, `fpga.dma_out`: one tensor moved between off-chip DRAM and an on-chip buffer by the DMA
  engines, tile by tile through a (double) buffer; `bytes` as moved (A8 codes, packed weights) and
  `seconds` at the configured bandwidth. The compute op they feed or drain is priced with them: its
  scheduled latency holds max(compute, DMA) when double-buffered.
- `fpga.scores`, `fpga.softmax`, `fpga.pv`: attention in the GEMM form, each a pass through off-chip
  memory (scores [H, S, T] are written, read, written and read again).
- `fpga.kernel`: any other `llm` operator on the vector unit (norms, elementwise, gathers, copies).

Every op that runs carries the `Scheduled` placement (device, slot, start, latency, energy, off-chip
bytes). Semantics live in `fpga_semantics.py`.
"""

from __future__ import annotations

from xdsl.dialects.builtin import I64, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, TensorType, UnitAttr
from xdsl.ir import Dialect
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm import QuantAttr, tensor_shape
from pimc.dialects.llm_semantics import KERNELS, STATEFUL_OPS
from pimc.dialects.sched import ScheduledOp


def _int(attr: IntegerAttr) -> int:
    return attr.value.data


class FpgaOp(IRDLOperation):
    irdl_options = (ParsePropInAttrDict(),)


def _check_buffer(op: IRDLOperation, need: IntegerAttr, capacity: IntegerAttr, what: str) -> None:
    if _int(need) > _int(capacity):
        raise VerifyException(
            f"{op.name}: {what} need {_int(need)} B on chip, more than the {_int(capacity)} B of buffers"
        )


class _DmaOp(FpgaOp):
    sources = var_operand_def(TensorType)
    moved = var_result_def(TensorType)
    what = prop_def(StringAttr)
    bytes = prop_def(FloatAttr)
    seconds = prop_def(FloatAttr)
    tile_bytes = prop_def(IntegerAttr[I64])
    double_buffered = opt_prop_def(UnitAttr)
    onchip_capacity = prop_def(IntegerAttr[I64])
    assembly_format = "$sources attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if not self.sources or tuple(v.type for v in self.sources) != tuple(r.type for r in self.moved):
            raise VerifyException(f"{self.name}: one result per moved tensor, of its type")
        if self.bytes.value.data < 0 or self.seconds.value.data < 0 or _int(self.tile_bytes) < 0:
            raise VerifyException(f"{self.name}: bytes, seconds and tile_bytes must not be negative")
        halves = 2 if self.double_buffered is not None else 1
        if halves * _int(self.tile_bytes) > _int(self.onchip_capacity):
            raise VerifyException(
                f"{self.name} ({self.what.data}): {halves} x {_int(self.tile_bytes)} B tile buffer, more than "
                f"the {_int(self.onchip_capacity)} B on chip"
            )


@irdl_op_definition
class DmaInOp(_DmaOp):
    """`sources` read from off-chip DRAM into on-chip buffers (the same values, now on chip)."""

    name = "fpga.dma_in"


@irdl_op_definition
class DmaOutOp(_DmaOp):
    """`sources` written from their on-chip buffers to off-chip DRAM."""

    name = "fpga.dma_out"


@irdl_op_definition
class GemmOp(ScheduledOp):
    """y = x [M, K] · wᵀ [K, N] (+ bias) with integer weight codes (`wquant`) and input codes (`aquant`)."""

    name = "fpga.gemm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    wquant = prop_def(QuantAttr)
    aquant = prop_def(QuantAttr)
    tile_m = prop_def(IntegerAttr[I64])
    tile_n = prop_def(IntegerAttr[I64])
    tile_k = prop_def(IntegerAttr[I64])
    cycles = prop_def(IntegerAttr[I64])
    buffer_bytes = prop_def(IntegerAttr[I64])
    onchip_capacity = prop_def(IntegerAttr[I64])
    assembly_format = "$input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        n, k = tensor_shape(self.weight)
        if tensor_shape(self.input)[-1] != k or tensor_shape(self.result)[-1] != n:
            raise VerifyException(f"fpga.gemm: shapes {tensor_shape(self.input)} x [{n}, {k}]ᵀ do not match the result")
        for name in ("tile_m", "tile_n", "tile_k"):
            if _int(getattr(self, name)) <= 0:
                raise VerifyException(f"fpga.gemm: {name} must be positive")
        _check_buffer(self, self.buffer_bytes, self.onchip_capacity, "double-buffered tiles")


@irdl_op_definition
class UnpackOp(FpgaOp):
    """The weight, streamed packed (unique chunks of `chunk` codes + IDs in packets) and expanded on chip."""

    name = "fpga.unpack"
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    wquant = prop_def(QuantAttr)
    chunk = prop_def(IntegerAttr[I64])
    packet = prop_def(IntegerAttr[I64])
    unique = prop_def(IntegerAttr[I64])
    ids = prop_def(IntegerAttr[I64])
    raw_bytes = prop_def(IntegerAttr[I64])
    packed_bytes = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$weight attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.weight.type != self.result.type:
            raise VerifyException("fpga.unpack: result type must equal the weight's")
        if min(_int(self.chunk), _int(self.packet), _int(self.unique), _int(self.ids)) <= 0:
            raise VerifyException("fpga.unpack: chunk, packet, unique and ids must be positive")
        if _int(self.packed_bytes) >= _int(self.raw_bytes):
            raise VerifyException("fpga.unpack: packing must make the weight smaller")


class _AttentionProps(ScheduledOp):
    heads = prop_def(IntegerAttr[I64])
    kv_heads = prop_def(IntegerAttr[I64])
    head_dim = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr)
    causal = opt_prop_def(UnitAttr)
    window = opt_prop_def(IntegerAttr[I64])

    def _check_heads(self) -> None:
        h, kv = _int(self.heads), _int(self.kv_heads)
        if h <= 0 or kv <= 0 or h % kv:
            raise VerifyException(f"{self.name}: heads={h} must be a positive multiple of kv_heads={kv}")


@irdl_op_definition
class TphsOp(_AttentionProps):
    """Attention as the TPHS pipeline: per head, QKᵀ → softmax (max → exp LUT → divide) → SV on chip."""

    name = "fpga.tphs"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    positions = operand_def(TensorType)
    result = result_def(TensorType)
    qk_cycles = prop_def(IntegerAttr[I64])
    softmax_cycles = prop_def(IntegerAttr[I64])
    sv_cycles = prop_def(IntegerAttr[I64])
    onchip_need = prop_def(IntegerAttr[I64])
    onchip_capacity = prop_def(IntegerAttr[I64])
    assembly_format = "$query `,` $key `,` $value `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self._check_heads()
        _check_buffer(self, self.onchip_need, self.onchip_capacity, "TPHS intermediates")
        if tensor_shape(self.result) != tensor_shape(self.query):
            raise VerifyException("fpga.tphs: result shape must equal the query's")


@irdl_op_definition
class TphsQOp(_AttentionProps):
    """Attention as the TPHS pipeline from the Q projection on: per head, Q_h = x · Wq_hᵀ (+ bias) from
    integer codes (`wquant`, `aquant`), rope (`rope`: the `llm.rope` properties) when present, then
    QKᵀ → softmax → SV, all on chip. Result [S, H, D] as `fpga.tphs`."""

    name = "fpga.tphs_q"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    positions = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    wquant = prop_def(QuantAttr)
    aquant = prop_def(QuantAttr)
    rope = opt_prop_def(DictionaryAttr)
    q_cycles = prop_def(IntegerAttr[I64])
    rope_cycles = prop_def(IntegerAttr[I64])
    qk_cycles = prop_def(IntegerAttr[I64])
    softmax_cycles = prop_def(IntegerAttr[I64])
    sv_cycles = prop_def(IntegerAttr[I64])
    onchip_need = prop_def(IntegerAttr[I64])
    onchip_capacity = prop_def(IntegerAttr[I64])
    assembly_format = (
        "$input `,` $weight `,` $key `,` $value `,` $positions (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"
    )

    def verify_(self) -> None:
        self._check_heads()
        _check_buffer(self, self.onchip_need, self.onchip_capacity, "TPHS intermediates with the Q projection")
        h, d = _int(self.heads), _int(self.head_dim)
        n, k = tensor_shape(self.weight)
        s = tensor_shape(self.input)[0]
        if n != h * d or tensor_shape(self.input)[-1] != k:
            raise VerifyException(f"fpga.tphs_q: weight [{n}, {k}] must be [{h * d}, {tensor_shape(self.input)[-1]}]")
        if tensor_shape(self.result) != (s, h, d):
            raise VerifyException(f"fpga.tphs_q: result must be [{s}, {h}, {d}]")


@irdl_op_definition
class ScoresOp(_AttentionProps):
    """GEMM form, phase 1: masked, scaled QKᵀ per head → [H, S, T], stored off chip."""

    name = "fpga.scores"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    positions = operand_def(TensorType)
    result = result_def(TensorType)
    cycles = prop_def(IntegerAttr[I64])
    assembly_format = "$query `,` $key `,` $positions attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self._check_heads()
        s, h, _ = tensor_shape(self.query)
        t = tensor_shape(self.key)[0]
        if tensor_shape(self.result) != (h, s, t):
            raise VerifyException(f"fpga.scores: result must be [{h}, {s}, {t}]")


@irdl_op_definition
class SoftmaxOp(ScheduledOp):
    """GEMM form, phase 2: row softmax of the scores, read from and written back to off-chip memory."""

    name = "fpga.softmax"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    cycles = prop_def(IntegerAttr[I64])
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if self.input.type != self.result.type:
            raise VerifyException("fpga.softmax: result type must equal the input's")


@irdl_op_definition
class PvOp(_AttentionProps):
    """GEMM form, phase 3: probabilities [H, S, T] · V per head → [S, H, D]."""

    name = "fpga.pv"
    probs = operand_def(TensorType)
    value = operand_def(TensorType)
    result = result_def(TensorType)
    cycles = prop_def(IntegerAttr[I64])
    assembly_format = "$probs `,` $value attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        self._check_heads()
        h, s, _ = tensor_shape(self.probs)
        if tensor_shape(self.result) != (s, h, _int(self.head_dim)):
            raise VerifyException(f"fpga.pv: result must be [{s}, {h}, {_int(self.head_dim)}]")


@irdl_op_definition
class KernelOp(ScheduledOp):
    """Run the `llm` operator `kernel` with `params` on the vector unit (its DMA around it)."""

    name = "fpga.kernel"
    args = var_operand_def(TensorType)
    result = result_def(TensorType)
    kernel = prop_def(StringAttr)
    params = prop_def(DictionaryAttr)
    cycles = prop_def(IntegerAttr[I64])
    assembly_format = "$kernel `(` $args `)` attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        name = self.kernel.data
        if name not in KERNELS and name not in STATEFUL_OPS:
            raise VerifyException(f"fpga.kernel: no kernel implements '{name}'")
        if name in ("llm.linear", "llm.attention"):
            raise VerifyException(f"fpga.kernel: '{name}' runs on the PEs (fpga.gemm / fpga.tphs), not the vector unit")


FPGA = Dialect("fpga", [DmaInOp, DmaOutOp, GemmOp, UnpackOp, TphsOp, TphsQOp, ScoresOp, SoftmaxOp, PvOp, KernelOp], [])

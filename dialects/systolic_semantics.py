"""Semantics of the `systolic` dialect: integer GEMMs on an output-stationary array, with cycle counts.

`os_matmul` computes an integer product fold by fold, as an R x C output-stationary array does
(each fold pins an R x C block of outputs and streams K operand pairs through it), and counts the
cycles of each fold as SCALE-Sim does (2R + C + K - 2), the same figure the cost model prices.
`simulate_fold` steps one fold cycle by cycle (skewed operands, MACs, drain) for tests.
`systolic_attention` runs QKᵀ and PV on int8 codes (Q per query row and head, K per cached row,
V per channel, probabilities as 0..127 codes) with softmax in float32 on the vector unit, and
`systolic_linear` runs a quantized linear on its integer codes; everything else is the `llm`
reference kernel on the vector unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import llm, systolic
from pimc.dialects.llm_semantics import KERNELS, get_state, op_params, py_value, quantize_matrix, run_kernel, softmax


@dataclass(frozen=True)
class ArrayShape:
    rows: int
    cols: int
    operand_bits: int = 8

    def fold_cycles(self, k: int) -> int:
        return 2 * self.rows + self.cols + k - 2


def os_matmul(a: np.ndarray, b: np.ndarray, array: ArrayShape) -> tuple[np.ndarray, int]:
    """a [M, K] @ b [K, N] in int64, fold by fold on the array; returns (product, cycles)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.int64)
    cycles = 0
    for i in range(0, m, array.rows):
        for j in range(0, n, array.cols):
            out[i : i + array.rows, j : j + array.cols] = a[i : i + array.rows] @ b[:, j : j + array.cols]
            cycles += array.fold_cycles(k)
    return out, cycles


def simulate_fold(a: np.ndarray, b: np.ndarray, array: ArrayShape) -> tuple[np.ndarray, int]:
    """One fold cycle by cycle: a [<=R, K] enters from the left skewed by row, b [K, <=C] from the top
    skewed by column; PE (i, j) does its k-th MAC at cycle k + i + j; then the R rows of results
    shift out of the array, one row per cycle. Returns (results, cycles until the last one left)."""
    r_used, k = a.shape
    c_used = b.shape[1]
    acc = np.zeros((array.rows, array.cols), dtype=np.int64)
    left = np.zeros((array.rows, array.cols), dtype=np.int64)  # operand registers moving right
    top = np.zeros((array.rows, array.cols), dtype=np.int64)  # operand registers moving down
    last_mac = (k - 1) + (array.rows - 1) + (array.cols - 1)
    for cycle in range(last_mac + 1):
        left = np.roll(left, 1, axis=1)
        top = np.roll(top, 1, axis=0)
        for i in range(array.rows):  # row i receives a[i, cycle - i] at its left edge
            kk = cycle - i
            left[i, 0] = a[i, kk] if i < r_used and 0 <= kk < k else 0
        for j in range(array.cols):
            kk = cycle - j
            top[0, j] = b[kk, j] if j < c_used and 0 <= kk < k else 0
        acc += left * top
    drain = array.rows  # results leave one row per cycle
    return acc[:r_used, :c_used], last_mac + 1 + drain


def quantize_rows(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric codes of the last axis, one scale per row: (codes int64, scale float32 [..., 1])."""
    hi = 2 ** (bits - 1) - 1
    scale = np.abs(x).max(axis=-1, keepdims=True).astype(np.float32) / hi
    safe = np.where(scale == 0, 1.0, scale)
    return np.clip(np.rint(x / safe), -hi, hi).astype(np.int64), scale


@dataclass
class CycleCounter:
    """Array cycles spent by the functional model (compare with the cost model's fold count)."""

    cycles: int = 0


def systolic_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    pos: np.ndarray,
    params: dict,
    array: ArrayShape,
    counter: CycleCounter | None = None,
) -> np.ndarray:
    """softmax(q kᵀ · scale + mask) v with int8 operands on the array (float32 result [S, H, D])."""
    s, h, d = q.shape
    t, kv, _ = k.shape
    group = h // kv
    bits = array.operand_bits
    qc, qs = quantize_rows(q, bits)  # [S, H, D], [S, H, 1]
    kc, ks = quantize_rows(k, bits)  # [T, KV, D], [T, KV, 1]
    vt = np.transpose(v, (1, 2, 0))  # [KV, D, T]: V scaled per channel so the sum over keys keeps one scale
    vc, vs = quantize_rows(vt, bits)  # [KV, D, T], [KV, D, 1]
    keys = np.arange(t)[None, :]
    visible = np.ones((s, t), dtype=bool)
    if params.get("causal"):
        visible &= keys <= pos[:, None]
    if "window" in params:
        visible &= keys > pos[:, None] - params["window"]
    out = np.zeros((s, h, d), dtype=np.float32)
    p_hi = 2 ** (bits - 1) - 1
    cycles = 0
    for g in range(kv):
        heads = slice(g * group, (g + 1) * group)
        a = qc[:, heads, :].transpose(1, 0, 2).reshape(group * s, d)  # the group's queries stacked as rows
        scores, c1 = os_matmul(a, kc[:, g, :].T, array)  # [G*S, T]
        scale = qs[:, heads, 0].T.reshape(-1, 1) * ks[:, g, 0][None, :] * np.float32(params["scale"])
        logits = np.where(np.tile(visible, (group, 1)), scores * scale, -np.inf).astype(np.float32)
        probs = softmax(logits, axis=-1)
        pc = np.rint(probs * p_hi).astype(np.int64)  # probabilities as 0..127 codes, scale 1/127
        ctx, c2 = os_matmul(pc, vc[g].T, array)  # [G*S, D]
        res = ctx * (vs[g, :, 0][None, :] / p_hi)
        out[:, heads, :] = res.reshape(group, s, d).transpose(1, 0, 2)
        cycles += c1 + c2
    if counter is not None:
        counter.cycles += cycles
    return out


def systolic_linear(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    wquant: llm.QuantAttr,
    aquant: llm.QuantAttr,
    array: ArrayShape,
    counter: CycleCounter | None = None,
) -> np.ndarray:
    """A quantized linear on the array: integer codes per scale group, scales applied after (float32)."""
    k = weight.shape[1]
    xq = quantize_matrix(x.reshape(-1, k), aquant)
    wq = quantize_matrix(weight, wquant)
    xc, wc = xq.signed_codes(), wq.signed_codes()
    group = k if wquant.scale.data != "per_group" else wquant.group.data
    wscale = wq.scale.reshape(wq.scale.shape[0], -1).astype(np.float64)
    y = np.zeros((xc.shape[0], weight.shape[0]), dtype=np.float64)
    cycles = 0
    for gi, start in enumerate(range(0, k, group)):
        part, c = os_matmul(xc[:, start : start + group], wc[:, start : start + group].T, array)
        y += part * np.broadcast_to(wscale[:, min(gi, wscale.shape[1] - 1)], (weight.shape[0],))[None, :]
        cycles += c
    y *= xq.scale.reshape(-1, 1).astype(np.float64)
    if bias is not None:
        y = y + bias
    if counter is not None:
        counter.cycles += cycles
    return y.astype(np.float32).reshape(*x.shape[:-1], weight.shape[0])


# --------------------------------------------------------------------------- interpreter


def array_of(op: systolic.ArrayOp) -> ArrayShape:
    return ArrayShape(op.rows.value.data, op.cols.value.data, op.operand_bits.value.data)


def cycle_counter(interpreter: Interpreter) -> CycleCounter:
    """Array cycles the functional model spent in this interpreter (attention and integer GEMMs)."""
    return interpreter.get_data(SystolicFunctions, "cycles", CycleCounter)


def _integer(quant) -> bool:
    return quant is not None and quant.integer_codes


@register_impls
class SystolicFunctions(InterpreterFunctions):
    @staticmethod
    def run_stats(interpreter: Interpreter) -> dict:
        """For the run report: array cycles the functional model spent (attention and integer GEMMs)."""
        cycles = cycle_counter(interpreter).cycles
        return {"systolic": {"array_cycles": cycles}} if cycles else {}

    @impl(systolic.AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: systolic.AttentionOp, args: tuple) -> tuple:
        q, k, v, pos = args
        return (systolic_attention(q, k, v, pos, op_params(op), array_of(op), cycle_counter(interpreter)),)

    @impl(systolic.GemmOp)
    def run_gemm(self, interpreter: Interpreter, op: systolic.GemmOp, args: tuple) -> tuple:
        x, w, *bias = args
        if _integer(op.wquant) and _integer(op.aquant):
            y = systolic_linear(x, w, bias[0] if bias else None, op.wquant, op.aquant, array_of(op), cycle_counter(interpreter))
            return (y,)
        params = {k: op.properties[k] for k in ("wquant", "aquant") if k in op.properties}
        return (KERNELS["llm.linear"](tuple(args), params, (op.result.type,)),)  # float operands: several passes, same values

    @impl(systolic.VectorOp)
    def run_vector(self, interpreter: Interpreter, op: systolic.VectorOp, args: tuple) -> tuple:
        params = {k: py_value(v) for k, v in op.params.data.items()}
        types = tuple(r.type for r in op.results)
        return (run_kernel(op.kernel.data, tuple(args), params, types, get_state(interpreter)),)

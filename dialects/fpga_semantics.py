"""Semantics of the `fpga` dialect: integer-exact W8A8 GEMMs and attention head by head.

`fpga.gemm` multiplies the exact integer codes of `quantize_matrix` (weights per `wquant`, inputs per
`aquant`), accumulates each weight group's products in int64 (the PEs' wide accumulators) and applies the
scales once per group: equal to the `llm` reference on the same quantized model up to float rounding.
Attention runs one head at a time through the same three per-head kernels in both forms — `fpga.tphs`
chains them on chip, `fpga.scores` / `fpga.softmax` / `fpga.pv` run each over all heads — so the two
dataflows give bit-identical outputs. Attention keeps the IR's float precision (the `llm` IR does not
quantize attention activations); the cost model prices its products on the int8 PEs as MEADOW runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import fpga, llm
from pimc.dialects.llm_semantics import get_state, op_params, py_value, quantize_matrix, run_kernel, softmax
from pimc.targets.fpga.packing import pack_matrix


def integer_linear(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, wquant: llm.QuantAttr, aquant: llm.QuantAttr) -> np.ndarray:
    """x [..., K] · wᵀ from integer codes: Σ_groups scale_w · scale_x · Σ_k code_x · code_w (+ bias)."""
    n, k = w.shape
    x2 = x.reshape(-1, k)
    qw, qx = quantize_matrix(w, wquant), quantize_matrix(x2, aquant)
    groups, group = qw.codes.shape[1], qw.codes.shape[2]
    cw = qw.codes - qw.zero  # [N, G, g]; padded positions hold code 0 (value 0)
    cx = np.pad(qx.signed_codes(), ((0, 0), (0, groups * group - k))).reshape(x2.shape[0], groups, group)
    sx = np.broadcast_to(qx.scale.reshape(-1, 1), (x2.shape[0], 1)).astype(np.float64)
    sw = np.broadcast_to(qw.scale.reshape(qw.scale.shape[0], -1), (n, groups)).astype(np.float64)
    y = np.zeros((x2.shape[0], n), dtype=np.float64)
    for g in range(groups):
        acc = cx[:, g, :] @ cw[:, g, :].T  # int64, exact
        y += acc.astype(np.float64) * sw[:, g][None, :]
    y *= sx
    if bias is not None:
        y += bias
    return y.astype(np.float32).reshape(*x.shape[:-1], n)


def _params(op: fpga.ScheduledOp) -> dict[str, Any]:
    p = op_params(op)
    return {"group": p["heads"] // p["kv_heads"], "scale": p["scale"], "causal": "causal" in p, "window": p.get("window")}


def head_scores(q: np.ndarray, k: np.ndarray, pos: np.ndarray, h: int, p: Mapping[str, Any]) -> np.ndarray:
    """Scaled QKᵀ of head h [S, T], masked like `llm.attention`."""
    qh = np.ascontiguousarray(q[:, h, :])
    kh = np.ascontiguousarray(k[:, h // p["group"], :])
    scores = (qh @ kh.T) * np.float32(p["scale"])
    keys = np.arange(k.shape[0])[None, :]
    visible = np.ones(scores.shape, dtype=bool)
    if p["causal"]:
        visible &= keys <= pos[:, None]
    if p["window"] is not None:
        visible &= keys > pos[:, None] - p["window"]
    return np.where(visible, scores, -np.inf).astype(np.float32)


def head_softmax(scores: np.ndarray) -> np.ndarray:
    """max → exp → divide along the keys of one head's [S, T] scores."""
    return softmax(scores.copy(), axis=-1).astype(np.float32)  # fresh, aligned: same bits in both forms


def head_pv(probs: np.ndarray, v: np.ndarray, h: int, p: Mapping[str, Any]) -> np.ndarray:
    return probs.copy() @ np.ascontiguousarray(v[:, h // p["group"], :])


@register_impls
class FpgaFunctions(InterpreterFunctions):
    def __init__(self) -> None:
        self.checked: set[int] = set()

    @impl(fpga.GemmOp)
    def run_gemm(self, interpreter: Interpreter, op: fpga.GemmOp, args: tuple) -> tuple:
        x, w, *b = args
        return (integer_linear(x, w, b[0] if b else None, op.wquant, op.aquant),)

    @impl(fpga.UnpackOp)
    def run_unpack(self, interpreter: Interpreter, op: fpga.UnpackOp, args: tuple) -> tuple:
        """Pack the weight's codes as stored off chip and unpack them as the unit does; they must match."""
        (w,) = args
        if id(op) not in self.checked:
            rows, k = w.shape
            codes = quantize_matrix(w, op.wquant).codes.reshape(rows, -1)[:, :k]
            packed = pack_matrix(codes, op.chunk.value.data, int(op.wquant.code_bits), op.packet.value.data)
            if packed.unique != op.unique.value.data or not np.array_equal(packed.unpack(), codes):
                raise ValueError("fpga.unpack: the packed weight does not unpack to its codes")
            self.checked.add(id(op))
        return (w,)

    @impl(fpga.TphsOp)
    def run_tphs(self, interpreter: Interpreter, op: fpga.TphsOp, args: tuple) -> tuple:
        q, k, v, pos = args
        p = _params(op)
        out = np.empty(q.shape, dtype=np.float32)
        for h in range(q.shape[1]):  # head-sequential; tokens in parallel inside each product
            out[:, h, :] = head_pv(head_softmax(head_scores(q, k, pos, h, p)), v, h, p)
        return (out,)

    @impl(fpga.TphsQOp)
    def run_tphs_q(self, interpreter: Interpreter, op: fpga.TphsQOp, args: tuple) -> tuple:
        """Q from integer codes as `fpga.gemm` makes it, rope as `llm.rope`, then the heads as `fpga.tphs`."""
        x, w, k, v, pos, *b = args
        s, heads, d = (int(n) for n in op.result.type.get_shape())
        q = integer_linear(x, w, b[0] if b else None, op.wquant, op.aquant).reshape(s, heads, d)
        if op.rope is not None:
            params = {name: py_value(attr) for name, attr in op.rope.data.items()}
            q = run_kernel("llm.rope", (q, pos), params, (op.result.type,), get_state(interpreter))
        p = _params(op)
        out = np.empty(q.shape, dtype=np.float32)
        for h in range(heads):
            out[:, h, :] = head_pv(head_softmax(head_scores(q, k, pos, h, p)), v, h, p)
        return (out,)

    @impl(fpga.DmaInOp)
    def run_dma_in(self, interpreter: Interpreter, op: fpga.DmaInOp, args: tuple) -> tuple:
        return tuple(args)

    @impl(fpga.DmaOutOp)
    def run_dma_out(self, interpreter: Interpreter, op: fpga.DmaOutOp, args: tuple) -> tuple:
        return tuple(args)

    @impl(fpga.ScoresOp)
    def run_scores(self, interpreter: Interpreter, op: fpga.ScoresOp, args: tuple) -> tuple:
        q, k, pos = args
        p = _params(op)
        return (np.stack([head_scores(q, k, pos, h, p) for h in range(q.shape[1])]),)

    @impl(fpga.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: fpga.SoftmaxOp, args: tuple) -> tuple:
        return (np.stack([head_softmax(s) for s in args[0]]),)

    @impl(fpga.PvOp)
    def run_pv(self, interpreter: Interpreter, op: fpga.PvOp, args: tuple) -> tuple:
        probs, v = args
        p = _params(op)
        return (np.stack([head_pv(probs[h], v, h, p) for h in range(probs.shape[0])], axis=1).astype(np.float32),)

    @impl(fpga.KernelOp)
    def run_kernel_op(self, interpreter: Interpreter, op: fpga.KernelOp, args: tuple) -> tuple:
        params = {k: py_value(v) for k, v in op.params.data.items()}
        types = tuple(r.type for r in op.results)
        return (run_kernel(op.kernel.data, tuple(args), params, types, get_state(interpreter)),)

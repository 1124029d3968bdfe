"""Kernel models for cost studies: `gemv:MxK` (an M x K matrix times a K vector) and `gemm:MxKxN`
(an [M, K] activation times a K x N matrix), each one `llm.linear` in a function `@kernel`.

The weight is `kernel.weight` [outputs, inputs] (pimc's layout); `--wbits/--abits/--group` quantize
it like any model's linear, so the same cost models price it. `pimc estimate` reports it under
`kernel`; kernels have no tokens, so they are not compiled into runnable bundles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType, f32
from xdsl.ir import Block, Region
from xdsl.rewriter import InsertPoint

from pimc.dialects import llm
from pimc.errors import ModelError

KERNEL_FUNCTION = "kernel"
WEIGHT_NAME = "kernel.weight"
_SPEC = re.compile(r"^(gemv|gemm):(\d+)x(\d+)(?:x(\d+))?$")


@dataclass(frozen=True)
class KernelConfig:
    """One linear: `rows` activation rows of `k` inputs times a weight of `n` outputs."""

    name: str
    rows: int
    n: int
    k: int


def is_kernel_spec(spec: str) -> bool:
    return spec.split(":", 1)[0] in ("gemv", "gemm") and ":" in spec


def parse_kernel(spec: str) -> KernelConfig:
    """`gemv:MxK` -> rows 1, n M, k K; `gemm:MxKxN` -> rows M, k K, n N."""
    m = _SPEC.match(spec.replace(" ", ""))
    kind = spec.split(":", 1)[0]
    if m is None or (kind == "gemv") != (m.group(4) is None):
        raise ModelError(f"{spec}: expected a kernel like gemv:MxK or gemm:MxKxN with positive integers")
    dims = [int(g) for g in m.groups()[1:] if g is not None]
    if min(dims) <= 0:
        raise ModelError(f"{spec}: kernel dimensions must be positive")
    if kind == "gemv":
        return KernelConfig(spec, 1, dims[0], dims[1])
    return KernelConfig(spec, dims[0], dims[2], dims[1])


def build_kernel_module(cfg: KernelConfig) -> ModuleOp:
    """func.func @kernel(%x: tensor<rows x k>) -> tensor<rows x n> { llm.linear %x, kernel.weight }"""
    block = Block(arg_types=[TensorType(f32, [cfg.rows, cfg.k])])
    block.args[0].name_hint = "x"
    b = Builder(InsertPoint.at_end(block))
    w = b.insert(llm.WeightOp(WEIGHT_NAME, TensorType(f32, [cfg.n, cfg.k])))
    w.result.name_hint = "w"
    y = b.insert(llm.LinearOp.create(operands=[block.args[0], w.result], result_types=[TensorType(f32, [cfg.rows, cfg.n])]))
    b.insert(func.ReturnOp(y.results[0]))
    fn = func.FuncOp(KERNEL_FUNCTION, ([TensorType(f32, [cfg.rows, cfg.k])], [TensorType(f32, [cfg.rows, cfg.n])]), Region(block))
    module = ModuleOp([fn])
    module.attributes["pimc.model"] = StringAttr(cfg.name)
    return module

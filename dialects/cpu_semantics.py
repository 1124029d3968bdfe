"""Semantics of the `cpu` dialect: a kernel call runs the `llm` reference kernel it names; a fused
kernel runs the reference kernels of its body in order."""

from __future__ import annotations

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import cpu
from pimc.dialects.llm_semantics import get_state, py_value, run_fused_body, run_kernel


@register_impls
class CpuFunctions(InterpreterFunctions):
    @impl(cpu.KernelOp)
    def run_kernel_op(self, interpreter: Interpreter, op: cpu.KernelOp, args: tuple) -> tuple:
        params = {k: py_value(v) for k, v in op.params.data.items()}
        types = tuple(r.type for r in op.results)
        return (run_kernel(op.kernel.data, tuple(args), params, types, get_state(interpreter)),)

    @impl(cpu.FusedOp)
    def run_fused_op(self, interpreter: Interpreter, op: cpu.FusedOp, args: tuple) -> tuple:
        return (run_fused_body(op.body.block, tuple(args), get_state(interpreter)),)

"""Semantics of the `cpu` dialect: a kernel call runs the `llm` reference kernel it names."""

from __future__ import annotations

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import cpu
from pimc.dialects.llm_semantics import get_state, py_value, run_kernel


@register_impls
class CpuFunctions(InterpreterFunctions):
    @impl(cpu.KernelOp)
    def run_kernel_op(self, interpreter: Interpreter, op: cpu.KernelOp, args: tuple) -> tuple:
        params = {k: py_value(v) for k, v in op.params.data.items()}
        types = tuple(r.type for r in op.results)
        return (run_kernel(op.kernel.data, tuple(args), params, types, get_state(interpreter)),)

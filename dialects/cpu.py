"""The `cpu` dialect: the program a CPU device runs, one library kernel call per mapped op.

A CPU executes any `llm` operator through a kernel library (as llama.cpp's ggml does), so the
lowered op names the `llm` operator it implements and carries its parameters, plus where and when
it runs: device, schedule slot, start time and the cost the mapper priced it at. Its semantics are
the `llm` reference kernels (`cpu_semantics.py`).
"""

from __future__ import annotations

from xdsl.dialects.builtin import DictionaryAttr, StringAttr, TensorType
from xdsl.ir import Dialect
from xdsl.irdl import (
    irdl_op_definition,
    prop_def,
    result_def,
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm_semantics import KERNELS, STATEFUL_OPS
from pimc.dialects.sched import ScheduledOp


@irdl_op_definition
class KernelOp(ScheduledOp):
    """Run the `llm` operator `kernel` with `params` on `device`, at `start_s` in schedule slot `slot`."""

    name = "cpu.kernel"

    args = var_operand_def(TensorType)
    result = result_def(TensorType)
    kernel = prop_def(StringAttr)
    params = prop_def(DictionaryAttr)

    assembly_format = "$kernel `(` $args `)` attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        name = self.kernel.data
        if name not in KERNELS and name not in STATEFUL_OPS:
            raise VerifyException(f"cpu.kernel: no CPU kernel implements '{name}'")


CPU = Dialect("cpu", [KernelOp], [])

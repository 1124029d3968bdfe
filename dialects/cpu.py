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
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import IsolatedFromAbove
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm_semantics import KERNELS, STATEFUL_OPS
from pimc.dialects.llm import YieldOp
from pimc.dialects.sched import Scheduled, ScheduledOp


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


@irdl_op_definition
class FusedOp(ScheduledOp):
    """Run a fused chain of `llm` operators (its body, as in `llm.fused`) as one kernel on `device`:
    the intermediates stay in the cache."""

    name = "cpu.fused"

    args = var_operand_def(TensorType)
    result = result_def(TensorType)
    body = region_def("single_block")
    pattern = prop_def(StringAttr)
    traits = traits_def(Scheduled(), IsolatedFromAbove())

    assembly_format = "$pattern `(` $args `)` attr-dict `:` functional-type(operands, results) $body"

    def verify_(self) -> None:
        last = self.body.block.last_op
        if not isinstance(last, YieldOp) or last.value.type != self.result.type:
            raise VerifyException(f"cpu.fused: the body must end in llm.yield of the result type {self.result.type}")


CPU = Dialect("cpu", [KernelOp, FusedOp], [])

"""The target a lowering reads its device numbers from, and where the mapper placed an op.

The compile pipeline records the resolved target on the module (`pimc.target`, JSON) while the
lowerings run and removes it afterwards; a pass run alone (`pimc opt`) names it with `target=...`.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation

from pimc.errors import PimcError
from pimc.mapping.from_ir import SCHED_ATTR
from pimc.targets import Target, load_target

TARGET_ATTR = "pimc.target"
"""Module attribute holding the target (JSON) while the compile pipeline lowers the module."""


def record_target(module: ModuleOp, target: Target) -> None:
    module.attributes[TARGET_ATTR] = StringAttr(target.model_dump_json())


def forget_target(module: ModuleOp) -> None:
    module.attributes.pop(TARGET_ATTR, None)


def module_target(module: ModuleOp, spec: str, pass_name: str) -> Target:
    """The target named by a pass option, else the one the pipeline recorded on the module."""
    if spec:
        return load_target(spec)
    attr = module.attributes.get(TARGET_ATTR)
    if isinstance(attr, StringAttr):
        return Target.model_validate_json(attr.data)
    raise PimcError(f"{pass_name}: no target; pass {pass_name}{{target=NAME}} or run it inside `pimc compile`")


def placed_on(op: Operation, kind: str) -> str | None:
    """The device name an op is mapped to when that device is of `kind`, else None."""
    sched = op.attributes.get(SCHED_ATTR)
    if isinstance(sched, DictionaryAttr) and sched.data["kind"].data == kind:
        return sched.data["device"].data
    return None


def in_fused_body(op: Operation) -> bool:
    """Whether `op` is a part of a fused chain (inside an `llm.fused` or a device's fused kernel):
    the chain is placed and lowered as one op, its parts are not."""
    parent = op.parent_op()
    return parent is not None and not isinstance(parent, func.FuncOp)

"""Chains of `llm` ops run as one `llm.fused` kernel: matching single-use links, building the fused op,
and putting it in the chain's place. Shared by `fuse` (its patterns) and `tphs` (the Q projection).
"""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint

from pimc.dialects import llm


def only_user(value: SSAValue) -> Operation | None:
    """The one op using `value`; None when it has no use or several (an intermediate must have one)."""
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def produced_once_by(value: SSAValue, cls) -> Operation | None:
    """The op of type `cls` that makes `value`, when `value` has that one use; else None."""
    owner = value.owner
    return owner if isinstance(owner, cls) and only_user(value) is not None else None


def build_fused(chain: list[Operation], pattern: str) -> llm.FusedOp:
    """A detached `llm.fused` computing `chain` (its ops cloned into the body, on block arguments)."""
    inside = {r for op in chain for r in op.results}
    inputs = list(dict.fromkeys(v for op in chain for v in op.operands if v not in inside))
    block = Block(arg_types=[v.type for v in inputs])
    mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, block.args))
    for op in chain:
        clone = op.clone(value_mapper=mapping)
        clone.attributes.pop("pimc.not_on", None)
        block.add_op(clone)
        mapping.update(zip(op.results, clone.results))
    block.add_op(llm.YieldOp.create(operands=[mapping[chain[-1].results[0]]]))
    return llm.FusedOp.create(
        operands=inputs, result_types=[chain[-1].results[0].type], regions=[Region(block)],
        properties={"pattern": StringAttr(pattern)},
    )


def replace_chain(rewriter: PatternRewriter, chain: list[Operation], fused: llm.FusedOp) -> None:
    """Put `fused` (from `build_fused(chain, ...)`) where the chain ends, hand it the chain's users and
    erase the chain."""
    rewriter.insert(fused, InsertPoint.before(chain[-1]))
    rewriter.replace_all_uses_with(chain[-1].results[0], fused.result)
    for op in reversed(chain):
        rewriter.erase(op)

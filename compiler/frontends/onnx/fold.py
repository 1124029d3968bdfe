"""Constant folding: evaluate an ONNX node whose inputs are all known, with the ONNX reference
implementation of that op (the spec's own numpy code), so every op the standard defines folds.

What folds at import: initializer relayouts (transposes, casts, the unpacking of packed weights), shape
arithmetic (Shape → Gather → Concat → Reshape chains once the sequence length is fixed), masks and
position tables computed from the bound attention mask and positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops import load_op

from pimc.errors import ModelError
from pimc.frontends.onnx.reader import MAX_ELEMENTS, as_pimc_array, first_line


@dataclass(frozen=True)
class Const:
    """A value known at import time.

    `static`: the same in every specialization (initializers, Constant nodes and what folds from them
    alone), so it is folded once and keeps one weight name. `positional`: computed from the token
    positions or the attention mask that pimc binds per call, so it must be raised into an op that takes
    positions (RoPE, attention, position embedding) for decode to be right. `source`: the initializer
    this value is a relayout or cast of, which names its weight.
    """

    value: np.ndarray
    static: bool = True
    positional: bool = False
    source: str | None = None


POSITION_SOURCES = ("Range", "CumSum")
"""Ops through which exporters compute token positions (cache_position = arange(past, past + S)) when
their inputs depend on the sequence length (a Range over constants is just a constant)."""

LAYOUT_OPS = ("Identity", "Cast", "CastLike", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten")
"""Ops whose folded result keeps naming the initializer it came from."""


class Folder:
    """Evaluates nodes on constants; keeps one op implementation per (op type, node) pair."""

    def __init__(self, opsets: dict[str, int], where: str):
        self.opsets, self.where = opsets, where
        self.run_params = {
            "log": lambda *args: None,
            "opsets": opsets,
            "verbose": 0,
            "new_ops": {},
            "existing_functions": {},
            "evaluator_cls": ReferenceEvaluator,
        }

    def fold(self, node: onnx.NodeProto, inputs: list[Const | None]) -> list[Const]:
        arrays = [None if c is None else c.value for c in inputs]
        try:
            cls = load_op(node.domain, node.op_type, self.opsets.get(node.domain), evaluator_cls=ReferenceEvaluator)
        except Exception:
            raise ModelError(
                f"{self.where}: node '{node.name}' has op type '{node.domain + '.' if node.domain else ''}{node.op_type}'"
                " that pimc cannot map"
            ) from None
        try:
            with np.errstate(all="ignore"):
                results = cls(node, self.run_params).run(*_typed(node, arrays))
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{self.where}: node '{node.name}' ({node.op_type}) fails on its constant inputs ({first_line(e)})") from None
        known = [c for c in inputs if c is not None]
        static = all(c.static for c in known)
        positional = any(c.positional for c in known) or (node.op_type in POSITION_SOURCES and not static)
        source = known[0].source if node.op_type in LAYOUT_OPS and known and len(known[0].value.shape) else None
        out = []
        for array in results:
            array = np.asarray(array)
            if array.size > MAX_ELEMENTS:
                raise ModelError(f"{self.where}: node '{node.name}' ({node.op_type}) folds to {array.size} elements")
            out.append(Const(as_pimc_array(array), static, positional, source))
        return out


def _typed(node: onnx.NodeProto, arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Bit operations need their original unsigned bytes (pimc widens integers to int64)."""
    if node.op_type in ("BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"):
        return [a if a is None or a.dtype.kind not in "iu" or a.min(initial=0) < 0 else a.astype(np.uint64) for a in arrays]
    return arrays

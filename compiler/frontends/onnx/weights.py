"""The weight table an ONNX import fills: every constant a function reads, by a stable name.

Initializers keep their ONNX names (relayouts such as a MatMul weight transposed to pimc's [out, in]
keep the name too); other folded constants are named after the ONNX value that holds them, with the
sequence length appended when their value depends on it. A name asked for twice with different
contents gets a numbered suffix, so one name never means two arrays.
"""

from __future__ import annotations

import numpy as np


class WeightTable:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, name: str, array: np.ndarray) -> str:
        """Store `array` under `name` (or under `name#k` when `name` already holds other values)."""
        candidate, k = name, 0
        while candidate in self.arrays:
            held = self.arrays[candidate]
            if held is array or (held.shape == array.shape and held.dtype == array.dtype and np.array_equal(held, array)):
                return candidate
            k += 1
            candidate = f"{name}#{k}"
        self.arrays[candidate] = array
        return candidate

    def subset(self, names) -> dict[str, np.ndarray]:
        return {n: self.arrays[n] for n in sorted(names)}

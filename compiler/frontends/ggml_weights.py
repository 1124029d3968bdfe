"""Weights kept in their ggml encoding (a GGUF's Q4_1, Q8_0, TQ2_0 ... blocks), dequantized on use.

`GgmlWeights` is a read-only mapping name → float32 array like any weight store: the first access of
a weight dequantizes its blocks with `gguf.quants.dequantize` (the reference semantics of the format)
and keeps the result. `encoded` gives the raw blocks, which is what a bundle stores, so a saved
program keeps the file's encoding and its size (SmolLM2-135M Q4_1: ~98 MB, not ~540 MB of float32).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from pimc import progress
from pimc.errors import ModelError


@dataclass(frozen=True)
class GgmlTensor:
    """A weight as ggml stores it: `blocks` (uint8 [rows, bytes per row], or F32/F16 values) of `ggml_type`."""

    ggml_type: str
    shape: tuple[int, ...]
    blocks: np.ndarray

    def dequantize(self) -> np.ndarray:
        try:
            values = dequantize(self.blocks, GGMLQuantizationType[self.ggml_type])
        except NotImplementedError:
            raise ModelError(f"the gguf package cannot dequantize {self.ggml_type}") from None
        return np.ascontiguousarray(values, dtype=np.float32).reshape(self.shape)


class GgmlWeights(Mapping):
    """name → float32 weight; entries are `GgmlTensor`s (dequantized once, on first use) or arrays."""

    def __init__(self, entries: Mapping[str, GgmlTensor | np.ndarray]):
        self._entries = dict(sorted(entries.items()))
        self._values: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            entry = self._entries[name]
            if isinstance(entry, GgmlTensor):  # a status line while it runs: the first run's prefill pauses here
                done = sum(isinstance(self._entries[n], GgmlTensor) for n in self._values)
                encoded = sum(isinstance(e, GgmlTensor) for e in self._entries.values())
                with progress.task(f"dequantizing {name} ({entry.ggml_type}; {done + 1} of {encoded} ggml weights)"):
                    self._values[name] = entry.dequantize()
            else:
                self._values[name] = entry
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def encoded(self, name: str) -> GgmlTensor | np.ndarray:
        return self._entries[name]


GGML_METADATA_KEY = "pimc.ggml"
"""safetensors metadata key: JSON {weight name: {"type": ggml type, "shape": [...]}} of the raw entries."""


def to_safetensors(weights: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """Tensors (ggml entries as their raw blocks) and metadata for `safetensors.numpy.save_file`."""
    if not isinstance(weights, GgmlWeights):
        return {k: weights[k] for k in sorted(weights)}, None
    tensors, encodings = {}, {}
    for name in weights:
        entry = weights.encoded(name)
        if isinstance(entry, GgmlTensor):
            tensors[name] = np.ascontiguousarray(entry.blocks)
            encodings[name] = {"type": entry.ggml_type, "shape": list(entry.shape)}
        else:
            tensors[name] = entry
    return tensors, {GGML_METADATA_KEY: json.dumps(encodings, sort_keys=True)}


def from_safetensors(tensors: dict[str, np.ndarray], metadata: Mapping[str, str] | None) -> Mapping[str, np.ndarray]:
    """The inverse of `to_safetensors`."""
    if not metadata or GGML_METADATA_KEY not in metadata:
        return tensors
    try:
        encodings = json.loads(metadata[GGML_METADATA_KEY])
        entries: dict[str, GgmlTensor | np.ndarray] = dict(tensors)
        for name, e in encodings.items():
            entries[name] = GgmlTensor(str(e["type"]), tuple(int(d) for d in e["shape"]), tensors[name])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"malformed '{GGML_METADATA_KEY}' weight metadata ({e})") from None
    return GgmlWeights(entries)

"""Read a GGUF file (llama.cpp's model format) with the `gguf` package, checking it as it is read.

`read_gguf` returns the metadata as plain Python values and every tensor as its raw ggml encoding:
a block-quantized tensor keeps its bytes ([rows, bytes per row], uint8), so nothing is re-rounded.
Shapes are given in numpy order ([out, in]); GGUF itself lists dimensions innermost first.

A file that is truncated, corrupt, of another format or inconsistent (a tensor whose inner dimension
is not a whole number of its type's blocks) is a `ModelError` naming the file and the tensor or key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType

from pimc.errors import ModelError

GGUF_MAGIC = b"GGUF"
MAX_DIMS = 4  # ggml tensors have at most four dimensions


@dataclass(frozen=True)
class GgufTensor:
    """One tensor as stored: its ggml type name ("Q4_1", "F32" ...), numpy-order shape and raw data."""

    name: str
    ggml_type: str
    shape: tuple[int, ...]
    data: np.ndarray
    """F32/F16: the values; block formats and BF16: bytes [rows, bytes per row] (uint8)."""


@dataclass(frozen=True)
class GgufFile:
    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, GgufTensor]

    @property
    def architecture(self) -> str:
        return self.get("general.architecture", str)

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        """Metadata `key` as `kind` (int, float, str, bool, list); a missing key without default is an error."""
        if key not in self.metadata:
            if default is ...:
                raise ModelError(f"{self.path}: missing GGUF metadata key '{key}'")
            return default
        value = self.metadata[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ModelError(f"{self.path}: GGUF metadata key '{key}' must be {kind.__name__}, got {_short(value)}")
        return value


class _PastEnd(Exception):
    """A read beyond the end of the file (truncated, or a corrupt length or offset)."""


class _CheckedReader(GGUFReader):
    """GGUFReader that refuses reads past the end of the file and tensors that do not fit their blocks.

    The stock reader returns short arrays past the end, so a corrupt array length can make it loop for
    ~2^64 iterations; here every such read stops the parse.
    """

    def _get(self, offset, dtype, count=1, override_order=None):
        """As GGUFReader._get, on a plain ndarray view of the map (numpy's memmap slicing is ~10x slower)."""
        count, dtype = int(count), np.dtype(dtype)
        end = offset + dtype.itemsize * count
        if offset < 0 or count < 0 or end > len(self.data):
            raise _PastEnd(f"a read of {count} x {dtype.name} at byte {offset} runs past the end of the file")
        if getattr(self, "_plain", None) is None:
            self._plain = self.data.view(np.ndarray)
        arr = self._plain[offset:end].view(dtype)
        return arr.view(arr.dtype.newbyteorder(self.byte_order if override_order is None else override_order))

    def _build_tensors(self, start_offs: int, fields: list) -> None:
        for field in fields:
            _, name_data, n_dims, dims, raw_type, offset = field.parts
            name = bytes(name_data).decode("utf-8", errors="replace")
            if int(n_dims[0]) > MAX_DIMS:
                raise ModelError(f"tensor '{name}' has {int(n_dims[0])} dimensions (ggml allows at most {MAX_DIMS})")
            try:
                ggml_type = GGMLQuantizationType(int(raw_type[0]))
            except ValueError:
                raise ModelError(f"tensor '{name}' has unknown ggml type {int(raw_type[0])}") from None
            block, block_bytes = GGML_QUANT_SIZES[ggml_type]
            shape = [int(d) for d in dims]
            if shape and shape[0] % block:
                raise ModelError(
                    f"tensor '{name}' ({ggml_type.name}): its inner dimension {shape[0]} is not a multiple of the "
                    f"{block}-weight block of {ggml_type.name}"
                )
            n_bytes = math.prod(shape) // block * block_bytes
            end = start_offs + int(offset[0]) + n_bytes
            if end > len(self.data):
                raise ModelError(
                    f"tensor '{name}' ({ggml_type.name} {shape[::-1]}) ends at byte {end}, past the end of the file "
                    f"({len(self.data)} bytes): truncated?"
                )
        super()._build_tensors(start_offs, fields)


def read_gguf(path: Path) -> GgufFile:
    """The metadata and tensors of the GGUF file at `path` (memory-mapped; tensor data is copied on use)."""
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path}: not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r})")
    try:
        reader = _CheckedReader(path, "r")
        metadata = {name: _field_value(field) for name, field in reader.fields.items()}
        tensors = {t.name: _tensor(t) for t in reader.tensors}
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    except _PastEnd as e:
        raise ModelError(f"{path}: truncated or corrupt GGUF ({e})") from None
    except Exception as e:  # the gguf package raises ValueError, KeyError, IndexError ... on corrupt files
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{path}: corrupt GGUF file ({detail})") from None
    return GgufFile(path, metadata, tensors)


def _field_value(field) -> Any:
    """A metadata field as Python: str, int, float, bool, or a list of those."""
    main = field.types[0] if field.types else None
    if main == GGUFValueType.ARRAY:
        if len(field.types) > 2:
            raise ModelError(f"metadata key '{field.name}' is a nested array (not supported)")
        if len(field.types) == 1:  # empty array
            return []
        sub = field.types[1]
        if sub == GGUFValueType.STRING:
            return [_text(field.parts[i], field.name) for i in field.data]
        return [_scalar(field.parts[i], sub) for i in field.data]
    if main == GGUFValueType.STRING:
        return _text(field.parts[field.data[0]], field.name)
    return _scalar(field.parts[field.data[0]], main)


def _text(part: np.ndarray, key: str) -> str:
    try:
        return bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"metadata key '{key}' holds a string that is not UTF-8") from None


def _scalar(part: np.ndarray, kind: GGUFValueType) -> Any:
    value = part[0]
    if kind == GGUFValueType.BOOL:
        return bool(value)
    if kind in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return float(value)
    return int(value)


def _tensor(t) -> GgufTensor:
    shape = tuple(int(d) for d in reversed(t.shape.tolist()))
    return GgufTensor(t.name, GGMLQuantizationType(t.tensor_type).name, shape, t.data)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

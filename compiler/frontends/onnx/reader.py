"""Read and validate an ONNX file: the model proto (external data loaded, local functions inlined,
checked) and its initializers as numpy arrays.

Every failure a user can cause (missing file, truncated or corrupted bytes, missing external-data
file, a model the checker rejects) becomes one `ModelError` line naming the file. Nothing here
unpickles: ONNX is protobuf, external data is raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from pimc import progress
from pimc.errors import ModelError

MAX_ELEMENTS = 1 << 31
"""Largest tensor (elements) an import materializes; anything larger is a malformed or hostile file."""


def first_line(error: BaseException) -> str:
    text = " ".join(str(error).strip().split("\n")[0].split())
    return text or type(error).__name__


@dataclass
class OnnxModel:
    """A validated ONNX model: its main graph, opsets and lazily converted initializers."""

    path: Path
    proto: onnx.ModelProto
    opsets: dict[str, int]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def graph(self) -> onnx.GraphProto:
        return self.proto.graph

    @property
    def name(self) -> str:
        return self.path.stem

    def initializer_names(self) -> list[str]:
        return [t.name for t in self.graph.initializer]

    def initializer(self, name: str) -> np.ndarray:
        """An initializer as a numpy array (floats as float32, integers as int64, bool kept)."""
        if name not in self._arrays:
            proto = self._initializers[name]
            self._arrays[name] = tensor_to_array(proto, self.path)
        return self._arrays[name]

    @property
    def _initializers(self) -> dict[str, onnx.TensorProto]:
        if not hasattr(self, "_init_protos"):
            self._init_protos = {t.name: t for t in self.graph.initializer}
        return self._init_protos


def tensor_to_array(proto: onnx.TensorProto, path: Path) -> np.ndarray:
    """A TensorProto as numpy in pimc's element types: float32, int64 or bool."""
    count = 1
    for d in proto.dims:
        if d < 0:
            raise ModelError(f"{path}: tensor '{proto.name}' has a negative dimension {d}")
        count *= d
    if count > MAX_ELEMENTS:
        raise ModelError(f"{path}: tensor '{proto.name}' has {count} elements, more than pimc reads")
    try:
        array = numpy_helper.to_array(proto)
    except Exception as e:  # malformed raw data, unknown data type ...
        raise ModelError(f"{path}: cannot read tensor '{proto.name}' ({first_line(e)})") from None
    return as_pimc_array(np.asarray(array))


def as_pimc_array(array: np.ndarray) -> np.ndarray:
    """Widen to the three element types pimc computes with (bf16/f16 via float32, any int via int64)."""
    kind = array.dtype.kind
    if array.dtype == bool:
        return array
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind == "f" or array.dtype.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return array.astype(np.float32, copy=False)
    raise ModelError(f"tensors of element type {array.dtype} are not supported")


def load_onnx(path: Path) -> OnnxModel:
    """Load `path` with its external data, inline local functions and run the ONNX checker."""
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        with progress.task(f"loading {path.name}"):
            proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
    _load_external_data(proto, path)
    try:  # by path: the checker then sees external data as files instead of copying them (17 s for 0.5 GB)
        with progress.task(f"checking {path.name}"):
            onnx.checker.check_model(str(path))
    except Exception as e:
        raise ModelError(f"{path}: invalid ONNX model ({first_line(e)})") from None
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as e:
            raise ModelError(f"{path}: cannot inline the model's local functions ({first_line(e)})") from None
    opsets = {o.domain or "": o.version for o in proto.opset_import}
    opsets.setdefault("", 1)
    return OnnxModel(path, proto, opsets)


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Read every externally stored tensor's bytes, checking each file exists and stays in the folder."""
    folder = path.parent.resolve()
    external = [t for t in onnx.external_data_helper._get_all_tensors(proto) if onnx.external_data_helper.uses_external_data(t)]
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        file = (folder / location).resolve()
        if not location or folder not in file.parents:
            raise ModelError(f"{path}: tensor '{tensor.name}' points outside the model's folder ('{location}')")
        if not file.is_file():
            raise ModelError(f"{path}: external data file '{location}' of tensor '{tensor.name}' is missing")
    try:  # onnx.load_external_data_for_model, one tensor at a time for the progress bar
        with progress.task(f"reading external data of {path.name}", total=len(external)) as bar:
            for tensor in external:
                onnx.external_data_helper.load_external_data_for_tensor(tensor, str(folder))
                bar.advance()
    except Exception as e:
        raise ModelError(f"{path}: cannot read external data ({first_line(e)})") from None

"""The weight store: named float32 numpy arrays in pimc's layouts, seeded random or from safetensors.

Random weights are a pure function of (seed, weight name, shape), so any subset of a model gets the
same values in any order. Checkpoints are mapped onto the names the `llm` builder uses: GPT-2's
Conv1D weights are transposed to [out, in], OPT's position table drops its 2 offset rows.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from safetensors import safe_open
from xdsl.dialects.builtin import ModuleOp

from pimc.dialects import llm
from pimc.errors import ModelError
from pimc.frontends.hf_config import ModelConfig

WeightStore = dict[str, np.ndarray]


def weight_shapes(module: ModuleOp) -> dict[str, tuple[int, ...]]:
    """Every weight the module references, with the shape its IR expects (sorted by name)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for op in module.walk():
        if isinstance(op, llm.WeightOp):
            shape = tuple(op.result.type.get_shape())
            if shapes.setdefault(op.properties["name"].data, shape) != shape:
                raise ModelError(f"weight '{op.properties['name'].data}' is used with two shapes")
    return dict(sorted(shapes.items()))


def random_weights(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> WeightStore:
    """Deterministic weights scaled so activations keep unit variance through each layer."""
    store: WeightStore = {}
    for name, shape in shapes.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if name.endswith(".bias"):
            values = rng.normal(0.0, 0.02, shape)
        elif len(shape) == 1:  # norm scales around 1
            values = 1.0 + rng.normal(0.0, 0.1, shape)
        elif "embed" in name or "wte" in name or "wpe" in name:
            values = rng.normal(0.0, 1.0, shape)
        else:
            values = rng.normal(0.0, 1.0 / np.sqrt(shape[-1]), shape)
        store[name] = values.astype(np.float32)
    return store


def checkpoint_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelError(f"{index}: malformed safetensors index ({e})") from None
        return [folder / n for n in names]
    return sorted(folder.glob("*.safetensors"))


def load_checkpoint(folder: Path, cfg: ModelConfig, shapes: Mapping[str, tuple[int, ...]]) -> WeightStore:
    """Read the weights `shapes` names from the safetensors files in `folder`."""
    files = checkpoint_files(folder)
    if not files:
        raise ModelError(f"{folder}: no *.safetensors files next to config.json")
    raw = dict(_read_tensors(files))
    store: WeightStore = {}
    for name, shape in shapes.items():
        source = _find(raw, name, cfg)
        if source is None:
            raise ModelError(f"{folder}: checkpoint has no tensor for weight '{name}' {list(shape)}")
        array = _to_pimc_layout(name, raw[source], cfg)
        if tuple(array.shape) != tuple(shape):
            raise ModelError(f"{folder}: tensor '{source}' has shape {list(array.shape)}, expected {list(shape)}")
        store[name] = np.ascontiguousarray(array, dtype=np.float32)
    return store


def _read_tensors(files: Iterable[Path]):
    for path in files:
        if not path.is_file():
            raise ModelError(f"{path}: no such file")
        try:
            with safe_open(str(path), framework="numpy") as f:
                for key in f.keys():
                    yield key, _as_float32(f, key, path)
        except ModelError:
            raise
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise ModelError(f"{path}: cannot read safetensors file ({str(e).splitlines()[0]})") from None


def _as_float32(f, key: str, path: Path) -> np.ndarray:
    try:
        return f.get_tensor(key).astype(np.float32)
    except TypeError:
        # numpy has no bfloat16: read the raw 16-bit words and widen them.
        sl = f.get_slice(key)
        if sl.get_dtype() != "BF16":
            raise ModelError(f"{path}: tensor '{key}' has unsupported dtype {sl.get_dtype()}") from None
        return _read_bf16(path, key)


def _read_bf16(path: Path, key: str) -> np.ndarray:
    """Widen one bfloat16 tensor to float32, reading only its bytes (memory-mapped)."""
    with path.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(header_len))[key]
    begin, end = meta["data_offsets"]
    words = np.memmap(path, dtype="<u2", mode="r", offset=8 + header_len + begin, shape=((end - begin) // 2,))
    return (words.astype(np.uint32) << 16).view(np.float32).reshape(meta["shape"])


def _find(raw: Mapping[str, np.ndarray], name: str, cfg: ModelConfig) -> str | None:
    candidates = [name]
    if cfg.family == "gpt2":
        candidates.append(name.removeprefix("transformer."))
    return next((c for c in candidates if c in raw), None)


def _to_pimc_layout(name: str, array: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    if cfg.family == "gpt2" and array.ndim == 2 and any(k in name for k in ("c_attn", "c_proj", "c_fc")):
        return array.T  # Conv1D stores [in, out]
    if cfg.family == "opt" and name.endswith("embed_positions.weight"):
        return array[2:]  # OPT's learned positions start at row 2
    return array

"""Program bundles on disk: a directory written atomically and checked by hash when read back.

    program.mlir        the lowered module (device dialects), the program the simulator runs
    llm.mlir            the graph-level `llm` module it was lowered from (for inspection and diffs)
    weights.safetensors the weight store (weights imported from a GGUF keep their ggml blocks)
    tokenizer.json      the model's tokenizer, when it has one
    target.toml         the resolved target (overrides applied)
    schedule.json       the checked schedule of each function
    manifest.json       model, target, pimc version, options, schedule summary, sha256 of each file
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import save_file

from pimc.errors import BundleError, PimcError
from pimc.frontends.ggml_weights import from_safetensors, to_safetensors
from pimc.ir import parse_module, print_module
from pimc.targets import load_target, target_to_toml

FILES = ("program.mlir", "llm.mlir", "weights.safetensors", "target.toml", "schedule.json")
OPTIONAL_FILES = ("tokenizer.json",)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_bundle(program, path: Path) -> Path:
    """Write every file into a fresh sibling directory, then swap it into place."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / "program.mlir").write_text(print_module(program.module))
        (staging / "llm.mlir").write_text(program.llm_ir)
        tensors, metadata = to_safetensors(program.weights)
        save_file(tensors, str(staging / "weights.safetensors"), metadata=metadata)
        if program.tokenizer is not None:
            (staging / "tokenizer.json").write_text(program.tokenizer.to_str())
        (staging / "target.toml").write_text(target_to_toml(program.target))
        (staging / "schedule.json").write_text(json.dumps(program.schedules, indent=2) + "\n")
        manifest = dict(program.manifest)
        present = [*FILES, *(name for name in OPTIONAL_FILES if (staging / name).is_file())]
        manifest["files"] = {name: _sha256(staging / name) for name in present}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _swap_into_place(staging: Path, path: Path) -> None:
    if path.exists() and not (path / "manifest.json").is_file() and any(path.iterdir()):
        raise PimcError(f"{path}: exists and is not a pimc bundle; refusing to overwrite it")
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(old)
    staging.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_bundle(path: Path):
    from pimc.api import Program

    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise BundleError(f"{path}: not a pimc bundle (no manifest.json)")
    try:
        manifest = json.loads(manifest_file.read_text())
        hashes = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise BundleError(f"{manifest_file}: malformed manifest ({e})") from None
    if not isinstance(hashes, dict):
        raise BundleError(f"{manifest_file}: malformed manifest ('files' is not an object)")
    for name in [*FILES, *(n for n in OPTIONAL_FILES if n in hashes)]:
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: missing {name}")
        if _sha256(file) != hashes.get(name):
            raise BundleError(f"{file}: contents do not match the manifest's sha256 (modified or corrupt)")
    module = parse_module((path / "program.mlir").read_text(), str(path / "program.mlir"))
    target = load_target(path / "target.toml")
    weights = _load_weights(path / "weights.safetensors")
    schedules = json.loads((path / "schedule.json").read_text())
    tokenizer = _load_tokenizer(path / "tokenizer.json") if "tokenizer.json" in hashes else None
    return Program(module, weights, target, manifest, (path / "llm.mlir").read_text(), schedules, tokenizer=tokenizer)


def _load_weights(file: Path):
    with safe_open(str(file), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    return from_safetensors(tensors, metadata)


def _load_tokenizer(file: Path):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises its own exception type
        raise BundleError(f"{file}: cannot read tokenizer ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None

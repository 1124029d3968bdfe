"""Program bundles on disk: a directory written atomically and checked by hash when read back.

    program.mlir        the lowered module (device dialects), the program the simulator runs
    llm.mlir            the graph-level `llm` module it was lowered from (for inspection and diffs)
    weights.safetensors the weight store
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

from safetensors.numpy import load_file, save_file

from pimc.errors import BundleError, PimcError
from pimc.ir import parse_module, print_module
from pimc.targets import load_target, target_to_toml

FILES = ("program.mlir", "llm.mlir", "weights.safetensors", "target.toml", "schedule.json")


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
        save_file({k: program.weights[k] for k in sorted(program.weights)}, str(staging / "weights.safetensors"))
        (staging / "target.toml").write_text(target_to_toml(program.target))
        (staging / "schedule.json").write_text(json.dumps(program.schedules, indent=2) + "\n")
        manifest = dict(program.manifest)
        manifest["files"] = {name: _sha256(staging / name) for name in FILES}
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
    for name in FILES:
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: missing {name}")
        if _sha256(file) != hashes.get(name):
            raise BundleError(f"{file}: contents do not match the manifest's sha256 (modified or corrupt)")
    module = parse_module((path / "program.mlir").read_text(), str(path / "program.mlir"))
    target = load_target(path / "target.toml")
    weights = load_file(str(path / "weights.safetensors"))
    schedules = json.loads((path / "schedule.json").read_text())
    return Program(module, weights, target, manifest, (path / "llm.mlir").read_text(), schedules)

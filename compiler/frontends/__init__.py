"""Frontends: turn what a user names (a preset, a config.json folder, a .gguf file) into a model the pipeline reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from pimc.errors import ModelError
from pimc.frontends.gguf_model import GgufImport
from pimc.frontends.hf_config import ModelConfig, load_preset, preset_names, read_config_file
from pimc.frontends.kernels import KernelConfig, build_kernel_module, is_kernel_spec, parse_kernel
from pimc.frontends.llm_builder import build_module as build_model_module
from pimc.frontends.tokenizer import folder_tokenizer, gguf_tokenizer
from pimc.frontends.weights import WeightStore, checkpoint_files, load_checkpoint, random_weights, weight_shapes



@dataclass(frozen=True)
class ModelSource:
    """A model's architecture and where its weights may come from.

    The API reads a model only through `name`, `is_kernel`, `has_checkpoint`, `build` and
    `load_weights`, so an importer (ONNX, GGUF ...) plugs in by subclassing and overriding those.
    """

    config: ModelConfig | KernelConfig
    spec: str
    folder: Path | None = None  # folder of config.json, where safetensors files may sit

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def is_kernel(self) -> bool:
        return isinstance(self.config, KernelConfig)

    @property
    def has_checkpoint(self) -> bool:
        return self.folder is not None and bool(checkpoint_files(self.folder))

    @property
    def tokenizer(self):
        """A tokenizer for `--prompt` text (a `tokenizers.Tokenizer`), or None when the model carries none."""
        return folder_tokenizer(self.folder) if self.folder is not None else None

    def build(self, seq_len: int, context: int) -> ModuleOp:
        """The `llm` module: `@prefill` of `seq_len` tokens and `@decode` with a KV cache of `context`."""
        return build_module(self.config, seq_len, context)

    def load_weights(self, module: ModuleOp, weights: str = "auto", seed: int = 0) -> WeightStore:
        """Values for every `llm.weight` of `module` (see `model_weights`)."""
        return model_weights(self, module, weights, seed)


@dataclass(frozen=True)
class GgufSource(ModelSource):
    """A llama-layout GGUF file: weights keep their ggml encoding (see `gguf_model`)."""

    gguf: GgufImport | None = None

    @property
    def has_checkpoint(self) -> bool:
        return True

    @property
    def tokenizer(self):
        return gguf_tokenizer(self.gguf.file.metadata, str(self.gguf.file.path))

    def build(self, seq_len: int, context: int) -> ModuleOp:
        module = build_module(self.config, seq_len, context)
        self.gguf.set_weight_formats(module)
        return module

    def load_weights(self, module: ModuleOp, weights: str = "auto", seed: int = 0) -> WeightStore:
        if weights not in ("auto", "checkpoint"):
            raise ModelError(f"{self.spec}: a GGUF carries its weights (--weights {weights} does not apply)")
        return self.gguf.weights(module)


def read_model(spec: str) -> ModelSource:
    """A preset name, a config.json file or a folder holding one, a .gguf or .onnx file, or a kernel (`gemv:MxK`, `gemm:MxKxN`)."""
    if is_kernel_spec(spec):
        return ModelSource(parse_kernel(spec), spec)
    path = Path(spec)
    if path.suffix.lower() == ".gguf":
        gguf = GgufImport(path)
        return GgufSource(gguf.config, spec, gguf=gguf)
    if path.suffix.lower() == ".onnx":
        from pimc.frontends.onnx import read_onnx  # imports this module: load it lazily

        return read_onnx(spec)
    if path.exists():
        config = read_config_file(path)
        return ModelSource(config, spec, path if path.is_dir() else path.parent)
    if ("/" in spec or path.suffix) and spec not in preset_names():  # "opt-6.7b" is a preset, not a suffix
        raise ModelError(f"{spec}: no such file or directory")
    return ModelSource(load_preset(spec), spec)


def build_module(config: ModelConfig | KernelConfig, seq_len: int, context: int, *args, **kwargs) -> ModuleOp:
    """The `llm` module of a model (prefill + decode) or of a kernel (one function `@kernel`)."""
    if isinstance(config, KernelConfig):
        return build_kernel_module(config)
    return build_model_module(config, seq_len, context, *args, **kwargs)


def model_weights(source: ModelSource, module: ModuleOp, weights: str = "auto", seed: int = 0) -> WeightStore:
    """Weights for every `llm.weight` in `module`: "auto" (checkpoint if present, else random),
    "checkpoint" or "random" (seeded)."""
    shapes = weight_shapes(module)
    if weights not in ("auto", "checkpoint", "random"):
        raise ModelError(f"unknown weights source '{weights}' (auto, checkpoint, random)")
    if weights == "checkpoint" or (weights == "auto" and source.has_checkpoint):
        if source.folder is None:
            raise ModelError(f"{source.spec}: a preset has no checkpoint; use random weights")
        return load_checkpoint(source.folder, source.config, shapes)
    return random_weights(shapes, seed)


__all__ = ["GgufSource", "KernelConfig", "ModelConfig", "ModelSource", "build_module", "model_weights", "preset_names", "read_model"]

"""Hugging Face `config.json` → `ModelConfig`: the architecture facts the `llm` builder needs.

Families: llama (llama, mistral, qwen2: RMSNorm, RoPE, GQA, SwiGLU), gpt2 and opt (LayerNorm, learned
positions, GELU/ReLU MLP). Built-in presets are config.json files shipped in `presets/`, read the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pimc.errors import ModelError

LLAMA_FAMILY = ("llama", "mistral", "qwen2")
ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "relu2": "relu2",
}


@dataclass(frozen=True)
class ModelConfig:
    """One decoder-only model's shape and architecture choices."""

    name: str
    family: str  # "llama" | "gpt2" | "opt": which weight names and block layout
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    norm: str  # "rms" | "layer"
    norm_eps: float
    activation: str  # "silu" | "gelu" | "gelu_tanh" | "relu" | "relu2"
    gated_mlp: bool
    rope_theta: float | None  # None: learned absolute positions
    max_positions: int
    tie_embeddings: bool
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    sliding_window: int | None = None

    @property
    def parameter_count(self) -> int:
        d, f, hd = self.hidden_size, self.intermediate_size, self.head_dim
        attn = d * hd * (self.num_heads * 2 + self.num_kv_heads * 2)
        mlp = d * f * (3 if self.gated_mlp else 2)
        embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        pos = 0 if self.rope_theta is not None else self.max_positions * d
        return self.num_layers * (attn + mlp) + embed + pos


def preset_names() -> list[str]:
    folder = resources.files("pimc.frontends") / "presets"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> ModelConfig:
    if name not in preset_names():
        raise ModelError(f"unknown model preset '{name}' (presets: {', '.join(preset_names())})")
    text = (resources.files("pimc.frontends") / "presets" / f"{name}.json").read_text()
    return parse_config(json.loads(text), name, f"preset {name}")


def read_config_file(path: Path) -> ModelConfig:
    """Read `path` (a config.json or the folder holding one)."""
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise ModelError(f"{file}: no such file")
    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{file}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{file}: expected a JSON object")
    name = raw.get("_name_or_path") or file.parent.name or file.stem
    return parse_config(raw, str(name).rstrip("/").split("/")[-1], str(file))


class _Fields:
    """Typed access to config keys; errors name the file and the key."""

    def __init__(self, raw: dict[str, Any], where: str):
        self.raw, self.where = raw, where

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.raw or self.raw[key] is None:
            if default is ...:
                raise ModelError(f"{self.where}: missing required key '{key}'")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ModelError(f"{self.where}: key '{key}' must be {kind.__name__}, got {value!r}")
        if kind in (int, float) and value <= 0:
            raise ModelError(f"{self.where}: key '{key}' must be positive, got {value!r}")
        return value


def parse_config(raw: dict[str, Any], name: str, where: str) -> ModelConfig:
    fields = _Fields(raw, where)
    model_type = fields.get("model_type", str)
    if model_type in LLAMA_FAMILY:
        cfg = _llama(fields, name, model_type)
    elif model_type == "gpt2":
        cfg = _gpt2(fields, name)
    elif model_type == "opt":
        cfg = _opt(fields, name)
    else:
        families = ", ".join((*LLAMA_FAMILY, "gpt2", "opt"))
        raise ModelError(f"{where}: model_type '{model_type}' is not supported (supported: {families})")
    _check(cfg, where)
    return cfg


def _activation(fields: _Fields, key: str, default: str) -> str:
    act = fields.get(key, str, default)
    if act not in ACTIVATIONS:
        raise ModelError(f"{fields.where}: key '{key}' = '{act}' is not a supported activation ({', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[act]


def _llama(f: _Fields, name: str, model_type: str) -> ModelConfig:
    hidden, heads = f.get("hidden_size", int), f.get("num_attention_heads", int)
    scaling = f.raw.get("rope_scaling")
    if scaling and (scaling.get("rope_type") or scaling.get("type")) not in (None, "default"):
        raise ModelError(f"{f.where}: rope_scaling {scaling!r} is not supported yet (only unscaled RoPE)")
    # Qwen2 applies its window only with use_sliding_window (default false); Mistral whenever set.
    window = f.get("sliding_window", int, None) if f.raw.get("use_sliding_window", model_type != "qwen2") else None
    attention_bias = f.get("attention_bias", bool, model_type == "qwen2")
    return ModelConfig(
        name=name,
        family="llama",
        vocab_size=f.get("vocab_size", int),
        hidden_size=hidden,
        intermediate_size=f.get("intermediate_size", int),
        num_layers=f.get("num_hidden_layers", int),
        num_heads=heads,
        num_kv_heads=f.get("num_key_value_heads", int, heads),
        head_dim=f.get("head_dim", int, hidden // heads),
        norm="rms",
        norm_eps=f.get("rms_norm_eps", float, 1e-6),
        activation=_activation(f, "hidden_act", "silu"),
        gated_mlp=True,
        rope_theta=f.get("rope_theta", float, 10000.0),
        max_positions=f.get("max_position_embeddings", int, 2048),
        tie_embeddings=f.get("tie_word_embeddings", bool, False),
        qkv_bias=attention_bias,
        out_bias=f.get("attention_bias", bool, False),
        mlp_bias=f.get("mlp_bias", bool, False),
        sliding_window=window,
    )


def _gpt2(f: _Fields, name: str) -> ModelConfig:
    hidden, heads = f.get("n_embd", int), f.get("n_head", int)
    return ModelConfig(
        name=name,
        family="gpt2",
        vocab_size=f.get("vocab_size", int),
        hidden_size=hidden,
        intermediate_size=f.get("n_inner", int, 4 * hidden),
        num_layers=f.get("n_layer", int),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        norm="layer",
        norm_eps=f.get("layer_norm_epsilon", float, 1e-5),
        activation=_activation(f, "activation_function", "gelu_new"),
        gated_mlp=False,
        rope_theta=None,
        max_positions=f.get("n_positions", int, 1024),
        tie_embeddings=f.get("tie_word_embeddings", bool, True),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
    )


def _opt(f: _Fields, name: str) -> ModelConfig:
    hidden, heads = f.get("hidden_size", int), f.get("num_attention_heads", int)
    if f.get("word_embed_proj_dim", int, hidden) != hidden:
        raise ModelError(f"{f.where}: OPT with word_embed_proj_dim != hidden_size (project_in/out) is not supported")
    if not f.get("do_layer_norm_before", bool, True):
        raise ModelError(f"{f.where}: OPT with do_layer_norm_before=false (post-norm) is not supported")
    bias = f.get("enable_bias", bool, True)
    return ModelConfig(
        name=name,
        family="opt",
        vocab_size=f.get("vocab_size", int),
        hidden_size=hidden,
        intermediate_size=f.get("ffn_dim", int),
        num_layers=f.get("num_hidden_layers", int),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        norm="layer",
        norm_eps=1e-5,
        activation=_activation(f, "activation_function", "relu"),
        gated_mlp=False,
        rope_theta=None,
        max_positions=f.get("max_position_embeddings", int, 2048),
        tie_embeddings=f.get("tie_word_embeddings", bool, True),
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=bias,
    )


def _check(cfg: ModelConfig, where: str) -> None:
    if cfg.num_heads % cfg.num_kv_heads:
        raise ModelError(f"{where}: num_attention_heads {cfg.num_heads} is not a multiple of num_key_value_heads {cfg.num_kv_heads}")
    if cfg.rope_theta is not None and cfg.head_dim % 2:
        raise ModelError(f"{where}: head_dim {cfg.head_dim} must be even for RoPE")
    if cfg.family != "llama" and cfg.hidden_size % cfg.num_heads:
        raise ModelError(f"{where}: hidden size {cfg.hidden_size} is not a multiple of {cfg.num_heads} heads")

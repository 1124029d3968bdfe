"""A llama-layout GGUF file as a pimc model: architecture from its metadata, weights in their ggml encoding.

Architectures: `llama` (and models converted as llama: Mistral, SmolLM ...) and `qwen2` (q/k/v biases).
Both map onto `ModelConfig` and the llama graph of `llm_builder`; tensors map onto its Hugging Face
weight names (`blk.N.attn_q.weight` → `model.layers.N.self_attn.q_proj.weight`, ggml's [in, out]
dimension order read as pimc's [out, in]). Without `output.weight` the head is tied to `token_embd`.

llama.cpp's converter permutes the rows of each head of Q and K (and their biases) for the `llama`
architecture so that its rotary embedding can rotate adjacent pairs; that permutation is undone here,
on whole rows of blocks (exact), so pimc's half-split RoPE applies as in the Hugging Face model.

Every linear keeps its tensor's ggml type as its `wquant` (Q4_1 → `#llm.quant<q4_1, group = 32 ...>`),
so the cost models see the stored bytes; the weight store dequantizes with gguf's reference code.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from pimc import progress
from pimc.dialects import llm
from pimc.errors import ModelError
from pimc.frontends.ggml_weights import GgmlTensor, GgmlWeights
from pimc.frontends.gguf_file import GgufFile, GgufTensor, read_gguf
from pimc.frontends.hf_config import ModelConfig
from pimc.frontends.weights import weight_shapes

PERMUTED_QK = {"llama": True, "qwen2": False}
"""Supported architectures, and whether llama.cpp's converter permuted their Q/K rows for rotary."""

ASYMMETRIC = ("q4_1", "q5_1", "q2_k", "q4_k", "q5_k")
"""ggml formats whose blocks carry a min (offset) besides the scale."""

_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.o_proj.bias": "attn_output.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.gate_proj.bias": "ffn_gate.bias",
    "mlp.up_proj.bias": "ffn_up.bias",
    "mlp.down_proj.bias": "ffn_down.bias",
}
_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def gguf_tensor_name(name: str) -> str:
    """The GGUF tensor holding pimc's weight `name` (a Hugging Face llama name)."""
    if name in _GLOBAL:
        return _GLOBAL[name]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    if m is None or m.group(2) not in _LAYER:
        raise ModelError(f"no GGUF tensor for weight '{name}'")
    return f"blk.{m.group(1)}.{_LAYER[m.group(2)]}"


def weight_quant(ggml_type: str, where: str) -> llm.QuantAttr | None:
    """The `wquant` of a linear whose weight is stored as `ggml_type` (None: float32)."""
    fmt = ggml_type.lower()
    if fmt == "f32":
        return None
    if fmt in ("f16", "bf16"):
        return llm.QuantAttr(fmt, 32)
    if fmt in llm.GGML_FORMATS:
        return llm.QuantAttr(fmt, llm.GGML_FORMATS[fmt][1], "per_group", 16, symmetric=fmt not in ASYMMETRIC)
    supported = ", ".join(["F32", "F16", "BF16", *(f.upper() for f in llm.GGML_FORMATS)])
    raise ModelError(f"{where}: ggml type {ggml_type} is not supported for weights (supported: {supported})")


def gguf_config(f: GgufFile) -> ModelConfig:
    """The `ModelConfig` the metadata of a llama-layout GGUF describes."""
    arch = f.architecture
    if arch not in PERMUTED_QK:
        raise ModelError(f"{f.path}: GGUF architecture '{arch}' is not supported (supported: {', '.join(PERMUTED_QK)})")
    if f.get(f"{arch}.expert_count", int, 0) > 0:
        raise ModelError(f"{f.path}: mixture-of-experts GGUF models are not supported")
    scaling = f.get(f"{arch}.rope.scaling.type", str, "none")
    if scaling != "none" and not (scaling == "linear" and f.get(f"{arch}.rope.scaling.factor", float, 1.0) == 1.0):
        raise ModelError(f"{f.path}: rope scaling '{scaling}' is not supported yet (only unscaled RoPE)")
    hidden = f.get(f"{arch}.embedding_length", int)
    heads = f.get(f"{arch}.attention.head_count", int)
    head_dim = f.get(f"{arch}.attention.key_length", int, hidden // heads if heads else 0)
    if f.get(f"{arch}.attention.value_length", int, head_dim) != head_dim:
        raise ModelError(f"{f.path}: attention value_length differs from key_length (not supported)")
    if f.get(f"{arch}.rope.dimension_count", int, head_dim) != head_dim:
        raise ModelError(f"{f.path}: partial rotary ({arch}.rope.dimension_count != head dim {head_dim}) is not supported")
    embed = _tensor(f, "token_embd.weight")
    if len(embed.shape) != 2 or embed.shape[1] != hidden:
        raise ModelError(f"{f.path}: token_embd.weight has shape {list(embed.shape)}, expected [vocab, {hidden}]")
    vocab = embed.shape[0]
    if f.get(f"{arch}.vocab_size", int, vocab) != vocab:
        raise ModelError(f"{f.path}: {arch}.vocab_size {f.metadata[f'{arch}.vocab_size']} does not match token_embd's {vocab} rows")
    cfg = ModelConfig(
        name=_model_name(f),
        family="llama",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=f.get(f"{arch}.feed_forward_length", int),
        num_layers=f.get(f"{arch}.block_count", int),
        num_heads=heads,
        num_kv_heads=f.get(f"{arch}.attention.head_count_kv", int, heads),
        head_dim=head_dim,
        norm="rms",
        norm_eps=f.get(f"{arch}.attention.layer_norm_rms_epsilon", float),
        activation="silu",
        gated_mlp=True,
        rope_theta=f.get(f"{arch}.rope.freq_base", float, 10000.0),
        max_positions=f.get(f"{arch}.context_length", int, 2048),
        tie_embeddings="output.weight" not in f.tensors,
        qkv_bias="blk.0.attn_q.bias" in f.tensors,
        out_bias="blk.0.attn_output.bias" in f.tensors,
        mlp_bias="blk.0.ffn_up.bias" in f.tensors,
    )
    for key, value in (("embedding_length", hidden), ("head_count", cfg.num_heads), ("head_count_kv", cfg.num_kv_heads),
                       ("block_count", cfg.num_layers), ("feed_forward_length", cfg.intermediate_size),
                       ("head dim", cfg.head_dim), ("rms epsilon", cfg.norm_eps), ("rope.freq_base", cfg.rope_theta),
                       ("context_length", cfg.max_positions)):
        if not value > 0:
            raise ModelError(f"{f.path}: {arch} {key} must be positive, got {value}")
    if f"blk.{cfg.num_layers - 1}.attn_norm.weight" not in f.tensors or f"blk.{cfg.num_layers}.attn_norm.weight" in f.tensors:
        raise ModelError(f"{f.path}: {arch}.block_count {cfg.num_layers} does not match the file's blk.N tensors")
    if cfg.num_heads % cfg.num_kv_heads or cfg.head_dim % 2:
        raise ModelError(f"{f.path}: {cfg.num_heads} heads / {cfg.num_kv_heads} KV heads of dim {cfg.head_dim} are not supported")
    return cfg


def _model_name(f: GgufFile) -> str:
    name = f.metadata.get("general.name")
    return name if isinstance(name, str) and name.strip() else f.path.stem


def _tensor(f: GgufFile, name: str) -> GgufTensor:
    if name not in f.tensors:
        raise ModelError(f"{f.path}: missing tensor '{name}'")
    return f.tensors[name]


def head_rows(n_heads: int, rows: int) -> np.ndarray:
    """Row order that undoes llama.cpp's rotary permutation of a [n_heads * head_dim, ...] Q or K weight:
    within a head GGUF interleaves the two halves (0, d/2, 1, d/2+1 ...); the result is half-split again."""
    head_dim = rows // n_heads
    return np.arange(rows).reshape(n_heads, head_dim // 2, 2).swapaxes(1, 2).reshape(-1)


class GgufImport:
    """What the GGUF frontend needs of one file: its config, the linears' formats, the weights."""

    def __init__(self, path: Path):
        self.file = read_gguf(path)
        self.config = gguf_config(self.file)
        self._check_tensors()

    @cached_property
    def expected_tensors(self) -> dict[str, str]:
        """GGUF tensor name → pimc weight name, for every tensor the config needs."""
        from pimc.frontends.llm_builder import build_module

        module = build_module(self.config, 1, 1)
        return {gguf_tensor_name(name): name for name in weight_shapes(module)}

    def _check_tensors(self) -> None:
        names = self.expected_tensors
        extra = sorted(set(self.file.tensors) - set(names))
        if extra:
            raise ModelError(f"{self.file.path}: tensor '{extra[0]}' has no place in the {self.file.architecture} layout pimc imports")
        missing = sorted(set(names) - set(self.file.tensors))
        if missing:
            raise ModelError(f"{self.file.path}: missing tensor '{missing[0]}'")
        for gname in names:
            tensor = self.file.tensors[gname]
            if len(tensor.shape) == 2:
                weight_quant(tensor.ggml_type, f"{self.file.path}: tensor '{gname}'")

    def set_weight_formats(self, module: ModuleOp) -> None:
        """Give every linear the `wquant` of its tensor's ggml type."""
        for op in module.walk():
            if isinstance(op, llm.LinearOp) and isinstance(op.weight.owner, llm.WeightOp):
                gname = gguf_tensor_name(op.weight.owner.properties["name"].data)
                quant = weight_quant(self.file.tensors[gname].ggml_type, f"{self.file.path}: tensor '{gname}'")
                if quant is not None:
                    op.properties["wquant"] = quant

    def weights(self, module: ModuleOp) -> GgmlWeights:
        """Every weight `module` names: 2-D tensors in their encoding, 1-D ones (norms, biases) as float32."""
        entries: dict[str, GgmlTensor | np.ndarray] = {}
        shapes = weight_shapes(module)
        with progress.task(f"reading weights of {self.file.path.name}", total=len(shapes)) as bar:
            for name, shape in shapes.items():
                entries[name] = self._weight(name, shape)
                bar.advance()
        return GgmlWeights(entries)

    def _weight(self, name: str, shape) -> GgmlTensor | np.ndarray:
        """One weight: 1-D and F32 tensors dequantized (rows in llama order), the rest as ggml blocks."""
        gname = gguf_tensor_name(name)
        tensor = _tensor(self.file, gname)
        if tuple(tensor.shape) != tuple(shape):
            raise ModelError(f"{self.file.path}: tensor '{gname}' has shape {list(tensor.shape)}, expected {list(shape)}")
        entry = GgmlTensor(tensor.ggml_type, tuple(shape), np.array(tensor.data))  # copy out of the memory map
        heads = self._permuted_heads(gname)
        if len(shape) == 1 or tensor.ggml_type == "F32":
            values = entry.dequantize()
            if not np.all(np.isfinite(values)):
                raise ModelError(f"{self.file.path}: tensor '{gname}' holds NaN or infinite values")
            return values[head_rows(heads, shape[0])] if heads else values
        blocks = entry.blocks[head_rows(heads, shape[0])] if heads else entry.blocks
        return GgmlTensor(entry.ggml_type, entry.shape, np.ascontiguousarray(blocks))

    def _permuted_heads(self, gname: str) -> int:
        """Heads whose rows llama.cpp permuted in tensor `gname` (0: none)."""
        if not PERMUTED_QK[self.file.architecture]:
            return 0
        kind = gname.split(".")[2] if gname.startswith("blk.") else ""
        return {"attn_q": self.config.num_heads, "attn_k": self.config.num_kv_heads}.get(kind, 0)

"""Tiny llama GGUF files written with gguf.GGUFWriter, and an independent numpy llama forward pass.

The writer does what llama.cpp's convert_hf_to_gguf.py does to a Hugging Face llama: rows of each Q
and K head permuted for its rotary embedding, ggml [in, out] dimension order, block quantization by
`gguf.quants.quantize`. The reference reads the file back with gguf's own reader and dequantize and
runs the model in float32 with GGML's rotary convention (adjacent pairs for `llama`, halves for
`qwen2`), so it shares no code with pimc's importer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize
from tokenizers import pre_tokenizers

SPECIAL = "<|endoftext|>"
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ c", "a p"]


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """A byte-level BPE vocabulary: the 256 byte symbols, a few merges, one control token."""
    tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens += ["Ġt", "he", "Ġthe", "Ġc", "ap", SPECIAL]
    types = [1] * (len(tokens) - 1) + [3]
    return tokens, types, MERGES


def rope_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: half-split rotary rows → adjacent pairs."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(
    path: Path,
    qtype: GGMLQuantizationType = GGMLQuantizationType.F32,
    *,
    arch: str = "llama",
    hidden: int = 64,
    ffn: int = 96,
    heads: int = 4,
    kv_heads: int = 2,
    layers: int = 2,
    tied: bool = True,
    seed: int = 0,
    tokenizer: bool = True,
) -> Path:
    """A random-weight model; every 2-D weight stored as `qtype`, norms (and biases) as F32."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_vocab()
    vocab, hd = len(tokens), hidden // heads
    w = GGUFWriter(str(path), arch)
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(vocab)
    w.add_name("tiny-gguf")
    if tokenizer:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_eos_token_id(len(tokens) - 1)

    def matrix(name: str, rows: int, cols: int, permute_heads: int = 0) -> None:
        m = rng.normal(0.0, 1.0 / np.sqrt(cols), (rows, cols)).astype(np.float32)
        if permute_heads and arch == "llama":
            m = rope_permute(m, permute_heads)
        if qtype == GGMLQuantizationType.F32:
            w.add_tensor(name, m)
        else:
            w.add_tensor(name, quantize(m, qtype), raw_dtype=qtype)

    def vector(name: str, n: int, center: float, permute_heads: int = 0) -> None:
        v = (center + rng.normal(0.0, 0.1, n)).astype(np.float32)
        if permute_heads and arch == "llama":
            v = rope_permute(v, permute_heads)
        w.add_tensor(name, v)

    emb = rng.normal(0.0, 1.0, (vocab, hidden)).astype(np.float32)
    w.add_tensor("token_embd.weight", emb if qtype == GGMLQuantizationType.F32 else quantize(emb, qtype),
                 raw_dtype=None if qtype == GGMLQuantizationType.F32 else qtype)
    for i in range(layers):
        p = f"blk.{i}"
        vector(f"{p}.attn_norm.weight", hidden, 1.0)
        matrix(f"{p}.attn_q.weight", heads * hd, hidden, heads)
        matrix(f"{p}.attn_k.weight", kv_heads * hd, hidden, kv_heads)
        matrix(f"{p}.attn_v.weight", kv_heads * hd, hidden)
        if arch == "qwen2":
            vector(f"{p}.attn_q.bias", heads * hd, 0.0)
            vector(f"{p}.attn_k.bias", kv_heads * hd, 0.0)
            vector(f"{p}.attn_v.bias", kv_heads * hd, 0.0)
        matrix(f"{p}.attn_output.weight", hidden, heads * hd)
        vector(f"{p}.ffn_norm.weight", hidden, 1.0)
        matrix(f"{p}.ffn_gate.weight", ffn, hidden)
        matrix(f"{p}.ffn_up.weight", ffn, hidden)
        matrix(f"{p}.ffn_down.weight", hidden, ffn)
    vector("output_norm.weight", hidden, 1.0)
    if not tied:
        matrix("output.weight", vocab, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --------------------------------------------------------------------------- reference


def read_reference_model(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(hyper-parameters, float32 tensors in numpy order) straight from gguf's reader and dequantize."""
    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def meta(key, default=None):
        f = r.fields.get(f"{arch}.{key}")
        return f.contents() if f is not None else default

    hp = {
        "arch": arch,
        "layers": meta("block_count"),
        "heads": meta("attention.head_count"),
        "kv_heads": meta("attention.head_count_kv"),
        "eps": meta("attention.layer_norm_rms_epsilon"),
        "theta": meta("rope.freq_base", 10000.0),
    }
    tensors = {}
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors[t.name] = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
    return hp, tensors


def _rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * w


def _rope(x, pos, theta, interleaved):
    """x [S, H, D] rotated by pos · theta^(-2i/D): pairs (2i, 2i+1) (GGML NORM) or (i, i+D/2) (NEOX)."""
    d = x.shape[-1]
    freqs = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = pos[:, None].astype(np.float64) * freqs[None, :]
    cos, sin = np.cos(ang)[:, None, :].astype(np.float32), np.sin(ang)[:, None, :].astype(np.float32)
    a, b = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., : d // 2], x[..., d // 2 :])
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = np.empty_like(x)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., : d // 2], out[..., d // 2 :] = ra, rb
    return out


def reference_logits(hp: dict, t: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """float32 logits [S, vocab] of the prompt `ids` (causal self-attention, positions 0..S-1)."""
    ids = np.asarray(ids)
    s, heads, kvh = len(ids), hp["heads"], hp["kv_heads"]
    pos = np.arange(s)
    x = t["token_embd.weight"][ids]
    mask = np.triu(np.full((s, s), -np.inf, dtype=np.float32), 1)
    interleaved = hp["arch"] == "llama"
    for i in range(hp["layers"]):
        p = f"blk.{i}."

        def lin(h, name):
            y = h @ t[p + name + ".weight"].T
            return y + t[p + name + ".bias"] if p + name + ".bias" in t else y

        h = _rmsnorm(x, t[p + "attn_norm.weight"], hp["eps"])
        q = lin(h, "attn_q").reshape(s, heads, -1)
        k = lin(h, "attn_k").reshape(s, kvh, -1)
        v = lin(h, "attn_v").reshape(s, kvh, -1)
        q, k = _rope(q, pos, hp["theta"], interleaved), _rope(k, pos, hp["theta"], interleaved)
        d = q.shape[-1]
        out = np.empty_like(q)
        for hh in range(heads):
            g = hh // (heads // kvh)
            scores = q[:, hh, :] @ k[:, g, :].T / np.float32(np.sqrt(d)) + mask
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            out[:, hh, :] = probs @ v[:, g, :]
        x = x + lin(out.reshape(s, -1), "attn_output")
        h = _rmsnorm(x, t[p + "ffn_norm.weight"], hp["eps"])
        gate = lin(h, "ffn_gate")
        x = x + lin(gate / (1.0 + np.exp(-gate)) * lin(h, "ffn_up"), "ffn_down")
    x = _rmsnorm(x, t["output_norm.weight"], hp["eps"])
    head = t.get("output.weight", t["token_embd.weight"])
    return (x @ head.T).astype(np.float32)

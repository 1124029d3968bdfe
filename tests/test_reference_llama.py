"""pimc's `llm` programs against an independent numpy LLaMA written here from the Hugging Face modeling
code (not from pimc's kernels): embedding, RMSNorm, rotate_half RoPE, GQA causal attention (with an
optional sliding window), SwiGLU MLP, final norm, lm_head.

The reference reads the raw config.json keys with Hugging Face's defaults and computes in float64,
so it shares nothing with pimc but the weight dictionary.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from pimc.execute import Executor
from pimc.frontends import build_module, model_weights, read_model
from pimc.frontends.hf_config import parse_config
from pimc.frontends.weights import random_weights, weight_shapes

# --------------------------------------------------------------------------- the independent reference


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """x [S, H, D]: HF apply_rotary_pos_emb with emb = cat(freqs, freqs)."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    freqs = positions[:, None].astype(np.float64) * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [S, D]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    return x * cos + rotate_half(x) * sin


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def hf_forward(raw: dict, weights: dict[str, np.ndarray], ids) -> np.ndarray:
    """Logits [S, V] of a LLaMA/Mistral/Qwen2 config.json on token ids at positions 0..S-1."""
    model_type = raw["model_type"]
    hidden, heads = raw["hidden_size"], raw["num_attention_heads"]
    kv_heads = raw.get("num_key_value_heads") or heads
    hd = raw.get("head_dim") or hidden // heads
    eps = raw.get("rms_norm_eps", 1e-6)
    theta = raw.get("rope_theta", 10000.0)
    if model_type == "qwen2":
        qkv_bias, o_bias = True, False
        window = raw.get("sliding_window") if raw.get("use_sliding_window", False) else None
    else:
        qkv_bias = o_bias = raw.get("attention_bias", False)
        window = raw.get("sliding_window") if model_type == "mistral" else None
    tied = raw.get("tie_word_embeddings", False)

    W = {k: v.astype(np.float64) for k, v in weights.items()}
    ids = np.asarray(ids)
    s = len(ids)
    pos = np.arange(s)

    def lin(x, name, bias=False):
        y = x @ W[f"{name}.weight"].T
        return y + W[f"{name}.bias"] if bias else y

    i, j = np.arange(s)[:, None], np.arange(s)[None, :]
    visible = j <= i
    if window is not None:
        visible &= (i - j) < window

    x = W["model.embed_tokens.weight"][ids]
    for layer in range(raw["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        h = rms_norm(x, W[f"{p}.input_layernorm.weight"], eps)
        q = lin(h, f"{p}.self_attn.q_proj", qkv_bias).reshape(s, heads, hd)
        k = lin(h, f"{p}.self_attn.k_proj", qkv_bias).reshape(s, kv_heads, hd)
        v = lin(h, f"{p}.self_attn.v_proj", qkv_bias).reshape(s, kv_heads, hd)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        # repeat_kv: query head n uses kv head n // (heads / kv_heads)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        out = np.empty((s, heads, hd))
        for n in range(heads):
            scores = q[:, n] @ k[:, n].T / np.sqrt(hd)
            scores = np.where(visible, scores, -np.inf)
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            out[:, n] = probs @ v[:, n]
        x = x + lin(out.reshape(s, heads * hd), f"{p}.self_attn.o_proj", o_bias)
        h = rms_norm(x, W[f"{p}.post_attention_layernorm.weight"], eps)
        mlp = lin(silu(lin(h, f"{p}.mlp.gate_proj")) * lin(h, f"{p}.mlp.up_proj"), f"{p}.mlp.down_proj")
        x = x + mlp
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    return x @ head.T


# --------------------------------------------------------------------------- helpers


def prompt(n: int, vocab: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n)


def prefill_logits(module, weights, ids) -> np.ndarray:
    ex = Executor(module, weights)
    logits, next_ids = ex.call("prefill", np.asarray(ids), np.arange(len(ids)))
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(next_ids, np.argmax(logits, axis=-1))
    return logits


def assert_close(got: np.ndarray, want: np.ndarray, atol: float, rtol_scale: float = 1e-5) -> None:
    """Max abs diff within `atol` and within `rtol_scale` of the logits' own scale."""
    assert got.shape == want.shape
    scale = float(np.abs(want).max())
    assert scale > 0.1, f"degenerate logits (max |logit| {scale})"
    diff = float(np.abs(got - want).max())
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol:.3g} (logit scale {scale:.3g})"
    assert diff <= rtol_scale * scale, f"max abs diff {diff:.3g} is > {rtol_scale:g} of the logit scale {scale:.3g}"


def raw_preset(name: str) -> dict:
    return json.loads((resources.files("pimc.frontends") / "presets" / f"{name}.json").read_text())


def custom(raw: dict, seq: int, context: int, seed: int = 3, bias_std: float | None = None):
    cfg = parse_config(raw, raw["model_type"] + "-test", "test config")
    module = build_module(cfg, seq, context)
    weights = random_weights(weight_shapes(module), seed)
    if bias_std is not None:  # the store's biases are tiny (std 0.02): make them matter
        rng = np.random.default_rng(seed + 100)
        for name in weights:
            if name.endswith(".bias"):
                weights[name] = rng.normal(0.0, bias_std, weights[name].shape).astype(np.float32)
    return cfg, module, weights


# --------------------------------------------------------------------------- tests

S, K = 8, 5


def test_tiny_llama_prefill_matches_reference():
    src = read_model("tiny-llama")
    module = build_module(src.config, S, 32)
    weights = model_weights(src, module)
    ids = prompt(S, src.config.vocab_size)
    want = hf_forward(raw_preset("tiny-llama"), weights, ids)
    got = prefill_logits(module, weights, ids)
    assert_close(got, want, atol=1e-4)
    # the reference is sensitive: a different RoPE base moves the logits far beyond the tolerance
    off = hf_forward(dict(raw_preset("tiny-llama"), rope_theta=500.0), weights, ids)
    assert np.abs(off - want).max() > 1e-2


def test_tiny_llama_generate_matches_reference():
    """Greedy generation (prefill + decode steps through the KV cache) equals the reference on every row."""
    src = read_model("tiny-llama")
    module = build_module(src.config, S, 32)
    weights = model_weights(src, module)
    ids = prompt(S, src.config.vocab_size, seed=2)
    gen = Executor(module, weights).generate(list(ids), K + 1)
    full = np.concatenate([ids, gen.tokens[:K]])
    want = hf_forward(raw_preset("tiny-llama"), weights, full)
    assert gen.logits.shape == (S + K, src.config.vocab_size)
    assert_close(gen.logits, want, atol=1e-4)
    assert gen.tokens == [int(t) for t in np.argmax(want[S - 1 :], axis=-1)]


def test_decode_with_kv_cache_equals_full_prefill():
    """Prompt S then K single-token decode steps == one prefill of the S+K tokens (seq_len = S+K)."""
    src = read_model("tiny-llama")
    short = build_module(src.config, S, S + K)
    weights = model_weights(src, short)
    ids = prompt(S + K, src.config.vocab_size, seed=4)  # fixed tokens, not greedy ones

    ex = Executor(short, weights)
    rows = [ex.call("prefill", ids[:S], np.arange(S))[0]]
    for position in range(S, S + K):
        logits, next_ids = ex.call("decode", ids[position : position + 1], np.asarray([position]))
        assert logits.shape == (1, src.config.vocab_size)
        assert int(next_ids[0]) == int(np.argmax(logits[0]))
        rows.append(logits)
    stepped = np.concatenate(rows)

    full_module = build_module(src.config, S + K, S + K)
    full_weights = model_weights(src, full_module)
    assert full_weights.keys() == weights.keys()
    assert all(np.array_equal(full_weights[n], weights[n]) for n in weights)
    full = prefill_logits(full_module, full_weights, ids)

    assert 0.5 < np.abs(full).max() < 100  # logits are O(1), so an absolute 1e-5 is meaningful
    assert np.abs(stepped - full).max() <= 1e-5
    # rows for the prompt come from the same computation over the same keys
    np.testing.assert_allclose(stepped[:S], full[:S], atol=1e-5, rtol=0)


def test_reset_clears_the_kv_cache():
    src = read_model("tiny-llama")
    module = build_module(src.config, S, 16)
    weights = model_weights(src, module)
    ids = prompt(S, src.config.vocab_size, seed=5)
    first = Executor(module, weights)
    a = first.generate(list(ids), 4)
    b = first.generate(list(ids), 4)  # generate resets: a second run is identical
    assert a.tokens == b.tokens
    np.testing.assert_array_equal(a.logits, b.logits)


GQA_RAW = {
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 64,
    "intermediate_size": 112,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 16,  # heads * head_dim = 128 != hidden: o_proj is [64, 128]
    "rms_norm_eps": 1e-6,
    "rope_theta": 500000.0,
    "max_position_embeddings": 64,
}


def test_gqa_heavy_config_matches_reference():
    cfg, module, weights = custom(GQA_RAW, S + K, 32)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (8, 2, 16)
    assert weights["model.layers.0.self_attn.k_proj.weight"].shape == (32, 64)
    assert weights["model.layers.0.self_attn.o_proj.weight"].shape == (64, 128)
    ids = prompt(S + K, cfg.vocab_size, seed=6)
    want = hf_forward(GQA_RAW, weights, ids)
    assert_close(prefill_logits(module, weights, ids), want, atol=1e-4)
    # kv-head grouping matters: pairing query head n with kv head n % 2 instead gives other logits
    swapped = dict(weights)
    for layer in range(2):
        for t in ("k", "v"):
            name = f"model.layers.{layer}.self_attn.{t}_proj.weight"
            swapped[name] = weights[name].reshape(2, 16, 64)[::-1].reshape(32, 64)
    assert np.abs(hf_forward(GQA_RAW, swapped, ids) - want).max() > 1e-2


QWEN2_RAW = {
    "model_type": "qwen2",
    "vocab_size": 80,
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 128,
    "tie_word_embeddings": True,
    "use_sliding_window": False,
    "sliding_window": 4,
}


def test_qwen2_biases_and_tied_embeddings_match_reference():
    cfg, module, weights = custom(QWEN2_RAW, S, 16, bias_std=0.5)
    assert cfg.qkv_bias and not cfg.out_bias and cfg.tie_embeddings and cfg.sliding_window is None
    assert "lm_head.weight" not in weights
    biases = sorted(n for n in weights if n.endswith(".bias"))
    assert biases == sorted(
        f"model.layers.{i}.self_attn.{t}_proj.bias" for i in range(2) for t in "qkv"
    )
    ids = prompt(S, cfg.vocab_size, seed=7)
    want = hf_forward(QWEN2_RAW, weights, ids)
    assert_close(prefill_logits(module, weights, ids), want, atol=1e-4)
    no_bias = {n: (np.zeros_like(w) if n.endswith(".bias") else w) for n, w in weights.items()}
    assert np.abs(hf_forward(QWEN2_RAW, no_bias, ids) - want).max() > 1e-2


MISTRAL_RAW = {
    "model_type": "mistral",
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "sliding_window": 3,
}


def test_mistral_sliding_window_matches_reference():
    total = S + K
    cfg, module, weights = custom(MISTRAL_RAW, total, 16)
    assert cfg.sliding_window == 3
    windows = [op.window.value.data for op in module.walk() if op.name == "llm.attention" and op.window]
    assert windows == [3] * 4  # both layers, prefill and decode
    ids = prompt(total, cfg.vocab_size, seed=8)
    want = hf_forward(MISTRAL_RAW, weights, ids)
    assert_close(prefill_logits(module, weights, ids), want, atol=1e-4)
    # the window is visible in the reference: full causal attention gives other logits
    unwindowed = hf_forward(dict(MISTRAL_RAW, model_type="llama"), weights, ids)
    assert np.abs(unwindowed[3:] - want[3:]).max() > 1e-2
    np.testing.assert_allclose(unwindowed[:3], want[:3], atol=1e-9)  # rows inside the window agree

    # decode through the cache honours the window too
    _, short, short_w = custom(MISTRAL_RAW, S, 16)
    ex = Executor(short, short_w)
    rows = [ex.call("prefill", ids[:S], np.arange(S))[0]]
    rows += [ex.call("decode", ids[p : p + 1], np.asarray([p]))[0] for p in range(S, total)]
    assert_close(np.concatenate(rows), want, atol=1e-4)


def test_window_not_smaller_than_context_is_dropped():
    cfg, module, _ = custom(dict(MISTRAL_RAW, sliding_window=16), S, 16)
    assert cfg.sliding_window == 16
    assert all(op.window is None for op in module.walk() if op.name == "llm.attention")

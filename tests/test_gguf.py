"""GGUF import: tiny llama files written with gguf.GGUFWriter compile and run to the logits of an
independent numpy forward pass over gguf's dequantized tensors; weights keep their ggml encodings
(quant attributes, stored bytes, bundle contents); tokenizers; bad files are one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf_util import SPECIAL, read_reference_model, reference_logits, write_tiny_gguf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from test_cli import assert_ok, assert_user_error, pimc_inprocess

import pimc
from pimc.dialects import llm
from pimc.dialects.llm_work import op_work
from pimc.errors import PimcError
from pimc.frontends import read_model
from pimc.targets import load_target
from pimc.targets.kinds import can_run

PROMPT = [5, 17, 200, 3]
TOKENS = 3
# TQ2_0 blocks hold 256 weights: every inner dimension must be a multiple of 256.
SHAPES = {Q.TQ2_0: dict(hidden=256, ffn=512, heads=4, kv_heads=2)}


def tiny(tmp_path: Path, qtype: Q, **kw) -> Path:
    return write_tiny_gguf(tmp_path / f"tiny-{qtype.name.lower()}.gguf", qtype, **(SHAPES.get(qtype, {}) | kw))


def expected_logits(path: Path, tokens: list[int]) -> np.ndarray:
    """Reference rows for prefill of PROMPT then each fed-back token: the full sequence, one pass."""
    hp, tensors = read_reference_model(path)
    return reference_logits(hp, tensors, PROMPT + tokens[:-1])


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.TQ2_0])
def test_logits_equal_the_dequantized_reference(tmp_path, qtype):
    path = tiny(tmp_path, qtype)
    result = pimc.compile(str(path), "cpu-a76", seq_len=len(PROMPT), context=8).run(PROMPT, TOKENS)
    expected = expected_logits(path, result.tokens)
    assert result.logits.shape == expected.shape == (len(PROMPT) + TOKENS - 1, 262)
    assert np.max(np.abs(result.logits - expected)) <= 1e-4
    assert result.tokens == [int(t) for t in expected.argmax(-1)[len(PROMPT) - 1 :]]


def test_qwen2_with_biases_and_an_untied_head(tmp_path):
    path = write_tiny_gguf(tmp_path / "qwen.gguf", Q.Q8_0, arch="qwen2", tied=False)
    src = read_model(str(path))
    assert src.config.qkv_bias and not src.config.tie_embeddings
    result = pimc.compile(src, "cpu-a76", seq_len=len(PROMPT), context=8).run(PROMPT, TOKENS)
    assert np.max(np.abs(result.logits - expected_logits(path, result.tokens))) <= 1e-4


def test_rotary_permutation_is_undone(tmp_path):
    """Without undoing llama.cpp's Q/K row permutation the logits would differ from the reference."""
    path = tiny(tmp_path, Q.F32)
    src = read_model(str(path))
    module = src.build(len(PROMPT), 8)
    weights = src.load_weights(module)
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    hp, tensors = read_reference_model(path)
    raw = tensors["blk.0.attn_q.weight"]
    assert not np.array_equal(q, raw)
    hd = q.shape[0] // 4
    # head 0: GGUF row 1 is the Hugging Face row hd/2 (the first row of the second half)
    assert np.array_equal(raw[1], q[hd // 2]) and np.array_equal(raw[2], q[1])


@pytest.mark.parametrize(
    "qtype, fmt, bits_per_weight, code_bits",
    [(Q.Q8_0, "q8_0", 8.5, 8), (Q.Q4_0, "q4_0", 4.5, 4), (Q.Q4_1, "q4_1", 5.0, 4), (Q.Q5_0, "q5_0", 5.5, 5),
     (Q.TQ2_0, "tq2_0", 2.0625, 2), (Q.F16, "f16", 16.0, 16)],
)
def test_weights_keep_their_ggml_encoding(tmp_path, qtype, fmt, bits_per_weight, code_bits):
    src = read_model(str(tiny(tmp_path, qtype)))
    module = src.build(len(PROMPT), 8)
    linears = [op for op in module.walk() if isinstance(op, llm.LinearOp)]
    assert linears and all(op.wquant is not None and op.wquant.format.data == fmt for op in linears)
    for op in linears:
        n, k = op.weight.type.get_shape()
        work = op_work(op)
        assert work.weight_bits == code_bits
        assert work.weight_bytes == n * k * bits_per_weight / 8  # the stored blocks, scales included
        assert op.wquant.bits_per_weight == pytest.approx(bits_per_weight)
        if fmt != "f16":
            assert "wgroup" not in work.dims and work.dims["ggml_block"] == op.wquant.group.data


def test_f32_weights_have_no_quant(tmp_path):
    module = read_model(str(tiny(tmp_path, Q.F32))).build(len(PROMPT), 8)
    assert all(op.wquant is None for op in module.walk() if isinstance(op, llm.LinearOp))


def test_bundle_keeps_the_blocks_and_the_tokenizer(tmp_path):
    path = tiny(tmp_path, Q.Q4_0)
    prog = pimc.compile(str(path), "cpu-a76", seq_len=len(PROMPT), context=8)
    out = prog.save(tmp_path / "bundle")
    with safe_open(str(out / "weights.safetensors"), framework="numpy") as f:
        q = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
        assert q.dtype == np.uint8 and q.shape == (64, 64 // 32 * 18)  # raw Q4_0 blocks
    manifest = json.loads((out / "manifest.json").read_text())
    assert "tokenizer.json" in manifest["files"]
    loaded = pimc.load(out)
    again = loaded.run(PROMPT, TOKENS)
    first = prog.run(PROMPT, TOKENS)
    assert again.tokens == first.tokens and np.array_equal(again.logits, first.logits)
    assert loaded.encode(" the cap") == prog.encode(" the cap")
    before = (out / "weights.safetensors").read_bytes()
    prog.save(tmp_path / "bundle")
    assert (out / "weights.safetensors").read_bytes() == before  # byte-stable


def test_tokenizer_from_gguf_metadata(tmp_path):
    tok = read_model(str(tiny(tmp_path, Q.F32))).tokenizer
    enc = tok.encode(" the cap")
    assert enc.tokens == ["Ġthe", "Ġc", "ap"]
    assert tok.decode(enc.ids) == " the cap"
    assert tok.encode(f"a{SPECIAL}").tokens == ["a", SPECIAL]  # control tokens are whole


def test_tokenizer_json_next_to_a_config(tmp_path):
    gguf_tok = read_model(str(tiny(tmp_path, Q.F32))).tokenizer
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 262, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 1, "num_attention_heads": 4,
    }))
    assert read_model(str(folder)).tokenizer is None
    gguf_tok.save(str(folder / "tokenizer.json"))
    assert read_model(str(folder)).tokenizer.encode(" the cap").ids == gguf_tok.encode(" the cap").ids


def test_cli_run_with_a_prompt(tmp_path):
    path = tiny(tmp_path, Q.Q8_0)
    bundle = tmp_path / "b"
    assert_ok(pimc_inprocess("compile", path, "--seq-len", 3, "--context", 8, "-o", bundle))
    r = pimc_inprocess("run", bundle, "--prompt", " the cap", "--tokens", 2, "--json")
    assert_ok(r)
    data = json.loads(r.out)
    prog = pimc.load(bundle)
    assert data["text"] == prog.decode(data["tokens"]) and len(data["tokens"]) == 2
    assert data["tokens"] == prog.run(prog.encode(" the cap"), 2).tokens


def test_prompt_needs_a_tokenizer(tmp_path):
    path = write_tiny_gguf(tmp_path / "notok.gguf", Q.F32, tokenizer=False)
    bundle = tmp_path / "b"
    assert_ok(pimc_inprocess("compile", path, "--seq-len", 3, "--context", 8, "-o", bundle))
    assert_user_error(pimc_inprocess("run", bundle, "--prompt", "hi"), "no tokenizer")


def test_wbits_requantizes_a_gguf(tmp_path):
    path = tiny(tmp_path, Q.Q8_0)
    prog = pimc.compile(str(path), "cpu-a76", seq_len=len(PROMPT), context=8, wbits=4)
    assert "int4" in prog.llm_ir and "q8_0" not in prog.llm_ir


def test_random_weights_do_not_apply(tmp_path):
    with pytest.raises(PimcError, match="carries its weights"):
        pimc.compile(str(tiny(tmp_path, Q.F32)), "cpu-a76", seq_len=4, context=8, weights="random")


@pytest.mark.parametrize("target, device", [("ddr4-pud-x4", "pud"), ("zcu102-meadow", "fpga"), ("pimllm-rram", "xbar")])
def test_integer_code_devices_do_not_take_ggml_blocks(tmp_path, target, device):
    """PUD, FPGA and CIM linears compute with integer codes; ggml blocks (Q8_0) are not such codes."""
    module = read_model(str(tiny(tmp_path, Q.Q8_0))).build(len(PROMPT), 8)
    op = next(op for op in module.walk() if isinstance(op, llm.LinearOp))
    op.properties["aquant"] = llm.QuantAttr("int8", 1, scale="per_channel")
    tgt = load_target(target)
    assert not can_run(tgt, device, op_work(op))
    op.properties["wquant"] = llm.QuantAttr("int8", 32)
    assert can_run(tgt, device, op_work(op))


# --------------------------------------------------------------------------- errors


def _patch(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    return path


def _inner_dim_mismatch(t: Path) -> Path:
    """A Q8_0 tensor whose inner dimension (64) is rewritten to 48: not a whole number of 32-blocks."""
    path = tiny(t, Q.Q8_0)
    name = b"blk.1.ffn_gate.weight"
    dims = (2).to_bytes(4, "little") + (64).to_bytes(8, "little")
    return _patch(path, name + dims, name + (2).to_bytes(4, "little") + (48).to_bytes(8, "little"))


def _truncated(t: Path, keep: float) -> Path:
    path = tiny(t, Q.Q8_0)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


GGUF_ERRORS = {
    "truncated-data": (lambda t: _truncated(t, 0.6), ["truncated"]),
    "truncated-header": (lambda t: _truncated(t, 0.01), ["truncated or corrupt"]),
    "wrong-magic": (lambda t: _patch(tiny(t, Q.F32), b"GGUF", b"GGML"), ["not a GGUF file", "magic"]),
    "unsupported-architecture": (lambda t: write_tiny_gguf(t / "f.gguf", arch="falcon"), ["architecture 'falcon'", "llama, qwen2"]),
    "inner-dim-vs-block": (_inner_dim_mismatch, ["blk.1.ffn_gate.weight", "inner dimension 48", "32-weight block of Q8_0"]),
    "missing-file": (lambda t: t / "nope.gguf", ["nope.gguf", "no such file"]),
}


@pytest.mark.parametrize("name", sorted(GGUF_ERRORS))
def test_bad_gguf_is_one_line_exit_2(tmp_path, name):
    make, fragments = GGUF_ERRORS[name]
    src = tmp_path / "src"
    src.mkdir()
    path = make(src)
    work = tmp_path / "work"
    work.mkdir()
    assert_user_error(pimc_inprocess("compile", path, "-o", work / "out"), path.name, *fragments)
    assert list(work.iterdir()) == []  # no partial output


@pytest.fixture(scope="module")
def fixture_bytes(tmp_path_factory) -> bytes:
    path = write_tiny_gguf(tmp_path_factory.mktemp("fuzz") / "f.gguf", Q.Q8_0, hidden=32, ffn=32, heads=2, kv_heads=1, layers=1)
    return path.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_gguf_never_escapes_as_a_traceback(fixture_bytes, tmp_path_factory, data):
    raw = bytearray(fixture_bytes)
    header = min(len(raw), 4096)  # most structure (lengths, counts, types, dims, offsets) sits in the header
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, header - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("m") / "m.gguf"
    path.write_bytes(bytes(raw))
    try:
        src = read_model(str(path))
        module = src.build(2, 4)
        weights = src.load_weights(module)
        for name in weights:
            assert np.asarray(weights[name]).dtype == np.float32
        _ = src.tokenizer
    except PimcError:
        pass

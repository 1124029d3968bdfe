"""The `fuse` pass: which chains it fuses, that fused programs mean the same as unfused ones, that
the fused work is the sum of the parts minus the intermediates, and that fusion is priced and
bounded by the device's on-chip buffer."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

import pimc
from pimc.dialects import cpu, llm
from pimc.dialects.llm_work import fused_intermediate_bytes, op_work
from pimc.errors import PimcError
from pimc.execute import Executor
from pimc.frontends import read_model
from pimc.ir import parse_module, print_module, run_passes
from pimc.pipeline import graph_passes
from pimc.passes.fuse import FUSION_ATTR, fuse_module
from pimc.targets import load_target

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


def small_opt():
    """A one-layer OPT (layernorm, fc1 → relu → fc2, learned positions) small enough for random weights."""
    source = read_model("opt-125m")
    config = dataclasses.replace(source.config, vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=1,
                                 num_heads=2, num_kv_heads=2, head_dim=32, max_positions=64)
    return dataclasses.replace(source, config=config)


def _module(source, wbits=32, abits=32):
    module = source.build(8, 32)
    graph_passes(module, wbits, 32, abits)
    return module, source.load_weights(module, "random", 0)


def _generate(module, weights):
    return Executor(parse_module(print_module(module)), weights).generate(PROMPT, 6)


def _fused(module):
    return Counter(op.pattern.data for op in module.walk() if isinstance(op, llm.FusedOp))


@pytest.mark.parametrize(("model", "patterns"), [
    ("tiny-llama", {"attention_block": 4, "gated_mlp": 4, "norm_linear": 2}),
    ("small-opt", {"attention_block": 2, "norm_linear": 4}),  # layernorm → fc1 → relu, final norm → lm_head
])
def test_fusion_keeps_the_reference_semantics(model, patterns):
    source = small_opt() if model == "small-opt" else read_model(model)
    module, weights = _module(source)
    before = _generate(module, weights)
    fuse_module(module, load_target("cpu-a76"))
    assert dict(_fused(module)) == patterns
    after = _generate(module, weights)
    assert after.tokens == before.tokens
    np.testing.assert_array_equal(after.logits, before.logits)  # the same kernels in the same order


def test_fused_work_is_the_sum_of_the_parts_minus_the_intermediates():
    module, _ = _module(read_model("tiny-llama"), wbits=4, abits=8)
    decode = next(op for op in module.ops if op.sym_name.data == "decode")
    fuse_module(module, load_target("cpu-a76"), ("gated_mlp",))
    fused = next(op for op in decode.body.block.ops if isinstance(op, llm.FusedOp))
    work = op_work(fused)
    inner = [op_work(op) for op in fused.body.block.ops if not isinstance(op, llm.YieldOp)]
    assert [w.op for w in inner] == ["llm.linear", "llm.silu", "llm.linear", "llm.mul", "llm.linear"]
    # decode: x [1, 128] → gate/up [1, 344] → down [1, 128]; int4 codes of three weights, group 32
    assert work.flops == sum(w.flops for w in inner)
    assert work.weight_bytes == sum(w.weight_bytes for w in inner)
    assert work.coded_weights == tuple(c for w in inner for c in w.coded_weights)  # what a llama.cpp CPU re-prices
    assert [(c.n, c.k, c.code_bits) for c in work.coded_weights] == [(344, 128, 4.0), (344, 128, 4.0), (128, 344, 4.0)]  # gate, up, down
    assert work.input_bytes == 128 * 4 and work.output_bytes == 128 * 4
    unfused_bytes = sum(w.total_bytes for w in inner)
    intermediates = 4 * 344 * 4  # gate, silu, up and mul outputs: each written once and read once
    assert fused_intermediate_bytes(fused) == intermediates
    assert work.total_bytes == unfused_bytes - 2 * intermediates - 128 * 4  # x is read once, not twice


def test_fusion_is_priced_and_bounded_by_the_cache():
    target = load_target("cpu-a76")
    module, _ = _module(read_model("tiny-llama"))
    fuse_module(module, target)
    for op in (o for o in module.walk() if isinstance(o, llm.FusedOp)):
        choice = op.attributes[FUSION_ATTR].data
        assert choice["fused_s"].value.data < choice["unfused_s"].value.data
        assert choice["onchip_bytes"].value.data <= target.device("cpu").cache_bytes
    small = load_target("cpu-a76", ["cpu.cache_bytes=4000"])  # the prefill chains' intermediates no longer fit
    module, _ = _module(read_model("tiny-llama"))
    fuse_module(module, small)
    prefill = next(op for op in module.ops if op.sym_name.data == "prefill")
    assert not [op for op in prefill.walk() if isinstance(op, llm.FusedOp)]
    assert _fused(module)  # decode's fit
    module, _ = _module(read_model("tiny-llama"))
    assert fuse_module(module, load_target("cpu-i7-9700k")) == 0  # no cache size: no fused kernel


def test_fusion_is_not_chosen_where_the_parts_run_faster_elsewhere():
    # on edge-soc the FPGA runs tiny-llama's small vector ops faster than the CPU; every fused chain
    # must still beat its parts on their fastest devices, and the mapper may only put it on the CPU
    program = pimc.compile("tiny-llama", "edge-soc", seq_len=8, context=32, wbits=4, abits=8, fuse=True)
    rows = [r for rows in program.manifest["placement"].values() for r in rows if r["kind"] == "llm.fused"]
    assert rows and all(r["device"] == "cpu" and r["fused"]["fused_s"] < r["fused"]["unfused_s"] for r in rows)
    assert all(set(r["ruled_out"]) == {"pud", "fpga", "xbar"} for r in rows)
    assert rows[0]["ruled_out"]["fpga"] == "no fused kernel for fpga devices"


def test_fused_program_runs_saves_and_loads(tmp_path):
    plain = pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32, wbits=4, abits=8)
    fused = pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32, wbits=4, abits=8, fuse=True)
    assert [op for op in fused.module.walk() if isinstance(op, cpu.FusedOp)]
    loaded = pimc.load(fused.save(tmp_path / "fused"))
    a, b = plain.run(PROMPT, 6), loaded.run(PROMPT, 6)
    assert a.tokens == b.tokens
    np.testing.assert_array_equal(a.logits, b.logits)
    assert b.report.tokens_per_s > a.report.tokens_per_s  # fewer dispatches, intermediates in the cache
    assert loaded.manifest["options"]["fuse"] is True


def test_fuse_runs_alone_in_opt():
    module, _ = _module(read_model("tiny-llama"))
    run_passes(module, "fuse{target=cpu-a76 patterns=norm_linear}")
    assert dict(_fused(module)) == {"norm_linear": 2}
    with pytest.raises(PimcError, match="unknown pattern 'x'"):
        run_passes(module, "fuse{target=cpu-a76 patterns=x}")


def test_fused_op_verifier_names_the_problem():
    module, _ = _module(small_opt())
    fuse_module(module, load_target("cpu-a76"), ("linear_act",))
    assert dict(_fused(module)) == {"linear_act": 2}  # fc1 → relu
    text = print_module(module).replace('pattern = "linear_act"', 'pattern = "conv_act"', 1)
    with pytest.raises(PimcError, match="unknown pattern 'conv_act'"):
        parse_module(text)

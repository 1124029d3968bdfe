"""`CpuDevice.weight_format`: a CPU whose kernels read llama.cpp's block formats prices a linear's
integer codes in the block format of their width; the default prices the IR's codes. Byte counts by
hand from ggml-common.h's block layouts (written out here, not read back from the gguf package)."""

from __future__ import annotations

import pytest

from pimc.dialects import llm
from pimc.dialects.llm_work import op_work
from pimc.errors import PimcError
from pimc.frontends import build_module, read_model
from pimc.ir import parse_module
from pimc.pipeline import graph_passes
from pimc.targets import load_target, op_cost
from pimc.targets.cpu.weight_format import llama_cpp_bytes, llama_cpp_format

LLAMA_CPP = ["cpu.weight_format=llama.cpp"]


def linear_work(n: int, k: int, wbits: float, group: int = 32):
    module = build_module(read_model(f"gemv:{n}x{k}").config, 1, 1)
    graph_passes(module, wbits, group)
    return op_work(next(op for op in module.walk() if isinstance(op, llm.LinearOp)))


@pytest.mark.parametrize(("wbits", "fmt", "weight_bytes"), [
    (2, "q2_k", 64 * 2 * 84),      # Q2_K: 256 weights in 84 B (2-bit codes, 4-bit scale + min per 16, 2 f16)
    (3, "q3_k", 64 * 2 * 110),     # Q3_K: 110 B per 256
    (4, "q4_k", 64 * 2 * 144),     # Q4_K: 144 B per 256
    (5, "q5_k", 64 * 2 * 176),
    (6, "q6_k", 64 * 2 * 210),
    (8, "q8_0", 64 * 16 * 34),     # Q8_0: 32 int8 codes + an f16 scale = 34 B
    (1.58, "tq1_0", 64 * 2 * 54),  # TQ1_0 (ternary): 54 B per 256
    (1, "binary + f16/32", 64 * (512 // 8 + 16 * 2)),  # no llama.cpp format: codes + f16 per 32 (assumed)
    (7, "int7 + f16/32", 64 * (512 * 7 // 8 + 16 * 2)),
])
def test_llama_cpp_cpu_prices_each_width_in_its_block_format(wbits, fmt, weight_bytes):
    work = linear_work(64, 512, wbits)
    (coded,) = work.coded_weights
    assert coded.stored_bytes == work.weight_bytes  # no bias: the weight is all of it
    assert llama_cpp_format(coded.code_bits) == fmt and llama_cpp_bytes(coded) == weight_bytes
    io = 512 * 4 + 64 * 4
    assert op_cost(load_target("cpu-a76", LLAMA_CPP), "cpu", work).offchip_bytes == weight_bytes + io
    assert op_cost(load_target("cpu-a76"), "cpu", work).offchip_bytes == work.weight_bytes + io  # default: the IR's


def test_the_i7_reads_llama_cpp_blocks_in_both_presets():
    # A llama2-13b q_proj (5120x5120) at 2-bit per-channel codes: the IR stores 5120 x 5120 / 4 B of
    # codes + 5120 f16 scales = 6,563,840 B; Q2_K: 5120 rows x 20 blocks x 84 B = 8,601,600 B.
    work = linear_work(5120, 5120, 2, group=1 << 16)
    assert work.weight_bytes == 5120 * 5120 // 4 + 5120 * 2 == 6_563_840
    io = 5120 * 4 * 2
    baseline = op_cost(load_target("cpu-i7-9700k"), "cpu", work)
    host = op_cost(load_target("ddr4-pud-x4"), "cpu", work)  # the PUD system's host
    assert host == baseline
    assert host.offchip_bytes == 8_601_600 + io
    # 3 us + 8,642,560 B / (38.4 GB/s x 0.84) = 0.27094 ms
    assert host.latency_s == pytest.approx(3e-6 + (8_601_600 + io) / (38.4e9 * 0.84), rel=1e-12)
    as_ir = op_cost(load_target("ddr4-pud-x4", ["cpu.weight_format=ir"]), "cpu", work)
    assert as_ir.offchip_bytes == 6_563_840 + io


def test_bias_and_activations_keep_their_bytes():
    module = parse_module(
        "func.func @f(%x: tensor<1x256xf32>) -> tensor<1x8xf32> {\n"
        '  %w = llm.weight "w" : tensor<8x256xf32>\n'
        '  %b = llm.weight "b" : tensor<8xf32>\n'
        "  %y = llm.linear %x, %w bias %b {wquant = #llm.quant<int4, group = 64>} "
        ": (tensor<1x256xf32>, tensor<8x256xf32>, tensor<8xf32>) -> tensor<1x8xf32>\n"
        "  func.return %y : tensor<1x8xf32>\n"
        "}"
    )
    work = op_work(next(op for op in module.walk() if isinstance(op, llm.LinearOp)))
    ir_codes = 8 * 256 // 2 + 8 * 4 * 2  # int4 codes + an f16 scale per 64
    assert work.weight_bytes == ir_codes + 8 * 4  # + the f32 bias
    cost = op_cost(load_target("cpu-a76", LLAMA_CPP), "cpu", work)
    assert cost.offchip_bytes == 8 * 144 + 8 * 4 + 256 * 4 + 8 * 4  # Q4_K block + bias + x + y


@pytest.mark.parametrize("wbits", [32, 16])
def test_float_weights_are_not_re_priced(wbits):
    work = linear_work(64, 512, wbits)
    assert work.coded_weights == ()
    assert op_cost(load_target("cpu-a76", LLAMA_CPP), "cpu", work) == op_cost(load_target("cpu-a76"), "cpu", work)


def test_unknown_weight_format_is_a_clear_error():
    with pytest.raises(PimcError, match="weight_format"):
        load_target("cpu-a76", ["cpu.weight_format=gguf"])


def test_weights_already_in_a_llama_cpp_format_are_not_re_priced():
    module = parse_module(
        "func.func @f(%x: tensor<1x64xf32>) -> tensor<1x8xf32> {\n"
        '  %w = llm.weight "w" : tensor<8x64xf32>\n'
        "  %y = llm.linear %x, %w {wquant = #llm.quant<q4_0, group = 32>} "
        ": (tensor<1x64xf32>, tensor<8x64xf32>) -> tensor<1x8xf32>\n"
        "  func.return %y : tensor<1x8xf32>\n"
        "}"
    )
    work = op_work(next(op for op in module.walk() if isinstance(op, llm.LinearOp)))
    assert work.coded_weights == () and work.weight_bytes == 8 * 2 * 18  # a GGUF's Q4_0 blocks as stored
    assert op_cost(load_target("cpu-a76", LLAMA_CPP), "cpu", work) == op_cost(load_target("cpu-a76"), "cpu", work)


def test_the_placement_table_says_which_format_a_cpu_linear_is_priced_in():
    import pimc

    report = pimc.estimate("gemv:64x512", "cpu-a76", wbits=4, overrides=LLAMA_CPP)
    (row,) = report.data["placement"]["kernel"]
    assert row["weight_format"] == "q4_k" and row["offchip_bytes"] == 64 * 2 * 144 + 512 * 4 + 64 * 4
    assert "| llm.linear [q4_k] | cpu | 1 |" in report.to_markdown()
    (row,) = pimc.estimate("gemv:64x512", "cpu-a76", wbits=4).data["placement"]["kernel"]
    assert "weight_format" not in row  # the IR's codes: nothing to say

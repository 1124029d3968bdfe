"""The MVDRAM experiment (`pimc.studies.mvdram`): the llama.cpp CPU baseline's bytes and the 2-bit
GeMV against the published figures (the end-to-end rows run in bench/reproduce_mvdram.py)."""

from __future__ import annotations

import pytest

from pimc.dialects import llm
from pimc.studies import mvdram
from pimc.targets import load_target


def test_cpu_baseline_streams_llama_cpp_q2_k_blocks():
    # Q2_K (ggml-common.h): 256 weights in 84 bytes = 2.625 bits per weight; the GeMV is memory-bound.
    source = mvdram.LlamaCppWeights(mvdram.read_model(mvdram.GEMV).config, mvdram.GEMV, ggml_format="q2_k")
    linears = [op for op in source.build(1, 1).walk() if isinstance(op, llm.LinearOp)]
    assert [op.wquant.format.data for op in linears] == ["q2_k"]
    cpu = load_target(mvdram.CPU_TARGET).device("cpu")
    weight_bytes = 32000 * 4096 // 256 * 84
    assert weight_bytes == 43_008_000
    io_bytes = 4096 * 4 + 32000 * 4  # f32 activation in, f32 result out
    want_s = cpu.op_overhead_s + (weight_bytes + io_bytes) / (38.4e9 * 0.84)
    row = mvdram.gemv_row(2)
    assert row["cpu_format"] == "q2_k" and row["cpu_ms"] == pytest.approx(want_s * 1e3, rel=1e-3)


def test_two_bit_gemv_within_tolerance_of_the_published_figures():
    row = mvdram.gemv_row(2)
    pub = mvdram.PUBLISHED_GEMV[2]
    for key in ("speedup", "cpu_ms", "pud_ms", "dram_ms", "host_ms"):
        assert abs(mvdram.deviation(row[key], pub[key])) <= mvdram.TOLERANCE, (key, row[key], pub[key])


def test_gain_shrinks_as_bits_grow():
    speedups = [mvdram.gemv_row(b)["speedup"] for b in (2, 4, 8)]
    assert speedups[0] > speedups[1] > speedups[2] > 1


def test_two_bit_gemv_energy_by_hand():
    # Both sides price the i7-9700K by package power: 95 W while its cores run a kernel, + 160 pJ/B.
    row = mvdram.gemv_row(2)
    cpu_bytes = 43_008_000 + 4096 * 4 + 32000 * 4
    assert row["cpu_mj"] == pytest.approx(95.0 * row["cpu_ms"] + cpu_bytes * 160e-12 * 1e3, rel=1e-9)
    # 95 W x 1.3408 ms + 6.904 mJ = 134.28 mJ
    assert row["cpu_mj"] == pytest.approx(134.28, rel=1e-4)
    ratios = mvdram.host_wait_ratios(row)
    assert ratios["uncore (the model)"] == pytest.approx(row["energy_ratio"], rel=1e-9)
    assert list(ratios.values()) == sorted(ratios.values(), reverse=True)  # more host power, less gain

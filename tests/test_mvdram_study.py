"""The MVDRAM experiment (`pimc.studies.mvdram`): the llama.cpp CPU baseline's bytes and the 2-bit
GeMV against the published figures (the end-to-end rows run in bench/reproduce_mvdram.py)."""

from __future__ import annotations

import pytest

from pimc.studies import mvdram
from pimc.targets import load_target


def test_cpu_baseline_streams_llama_cpp_q2_k_blocks():
    # Q2_K (ggml-common.h): 256 weights in 84 bytes = 2.625 bits per weight; the GeMV is memory-bound.
    # The IR holds per-channel 2-bit codes (the PUD side's); the i7 reads them as Q2_K (weight_format).
    cpu = load_target(mvdram.CPU_TARGET).device("cpu")
    assert cpu.weight_format == "llama.cpp" == load_target(mvdram.PUD_TARGET).device("cpu").weight_format
    weight_bytes = 32000 * 4096 // 256 * 84
    assert weight_bytes == 43_008_000
    io_bytes = 4096 * 4 + 32000 * 4  # f32 activation in, f32 result out
    want_s = cpu.op_overhead_s + (weight_bytes + io_bytes) / (38.4e9 * 0.84)
    row = mvdram.gemv_row(2)
    assert row["cpu_format"] == "q2_k" and row["cpu_ms"] == pytest.approx(want_s * 1e3, rel=1e-12)


def test_gemv_phases_are_read_off_the_lowered_pud_ops():
    # W2A2: the 32000 outputs fit one chunk of 57,671 reliable columns and the 4096 inputs make blocks
    # of 128 per subarray: 32 tasks. In-DRAM (pud.gemv) + host (pud.encode, pud.aggregate) = the kernel.
    row = mvdram.gemv_row(2)
    assert row["tasks"] == 4096 // 128 == 32
    assert row["dram_ms"] + row["host_ms"] == pytest.approx(row["pud_ms"], rel=1e-12)


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


def test_where_pud_is_slower_the_hosts_gemv_equals_the_baseline():
    # 4096x4096 at W2A2: PUD's 32 tasks take longer than the i7's Q2_K stream, so the PUD system's
    # host runs it, priced exactly as the CPU baseline (same device, same llama.cpp format).
    row = mvdram.gemv_row(2, spec="gemv:4096x4096")
    assert not row["on_pud"] and row["tasks"] == 0
    assert row["speedup"] == pytest.approx(1.0, rel=1e-12) and row["energy_ratio"] == pytest.approx(1.0, rel=1e-12)


def test_shape_sweep_tasks():
    # Llama-2-13B lm_head: 5120 inputs in blocks of 128 -> 40 tasks; 32000 outputs fit one chunk.
    # Llama-3-8B lm_head: 128,256 outputs over 57,671 reliable columns per row (65,536 x 0.88) ->
    # 3 chunks, each of 4096 / 128 = 32 input blocks: 96 tasks.
    rows = mvdram.shape_rows(2)
    assert rows["Llama-2-13B lm_head"]["tasks"] == 5120 // 128 == 40
    assert rows["Llama-3-8B lm_head"]["tasks"] == -(-128256 // int(65536 * 0.88)) * (4096 // 128) == 96
    assert rows["Llama-2-7B lm_head"]["speedup"] == pytest.approx(mvdram.gemv_row(2)["speedup"], rel=1e-12)

"""Crossbar cost model: hand-computed latency and energy of a decode GEMV on pimllm-rram's crossbars.

The hardware numbers are written out here (not read back from the preset), so a changed preset
number shows up as a failing test that must be updated deliberately.
"""

import pytest

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets import load_target, op_cost
from pimc.targets.cim import breakdown, program_cost, supports, tile_linear, work_tiling


def linear(rows=1, n=4096, k=4096, wbits=1.6, abits=8.0, group=256, zero=0) -> Work:
    dims = {"rows": rows, "n": n, "k": k, "wgroup": group, "wzero": zero}
    return Work("llm.linear", 2.0 * rows * n * k, 2, n * k * wbits / 8, rows * k * 4, rows * n * 4,
                dims=dims, weight_bits=wbits, act_bits=abits)


@pytest.fixture(scope="module")
def target():
    return load_target("pimllm-rram")


def test_ternary_gemv_tiling(target):
    t = work_tiling(target.device("xbar"), linear())
    # 256-row slices (group 256), 1-bit cells: one (G+, G-) pair per output -> 128 outputs per crossbar
    assert (t.slice_k, t.k_slices, t.weight_slices, t.outputs_per_crossbar, t.n_slices) == (256, 16, 1, 128, 32)
    assert t.crossbars == 512
    assert t.dac_steps == 8  # 7 magnitude bits one at a time + the sign bit
    # analog subtraction: 128 conversions in the fullest crossbar over 32 ADCs (8 columns each)
    assert (t.column_rounds, t.rounds) == (4, 32)
    assert t.conversions == 8 * 4096 * 16


def test_ternary_gemv_latency_and_energy(target):
    work = linear()
    b = breakdown(target.device("xbar"), target.memory("lpddr"), work)
    # round = read 3.16 ns + ADC (8 + 2) / 1 GS/s + 2.2 digital periods of 10 ns = 35.16 ns; 32 rounds
    assert b.read_s == pytest.approx(32 * 3.16e-9, rel=1e-12)
    assert b.adc_s == pytest.approx(32 * 10e-9, rel=1e-12)
    # digital: 32 x 22 ns + adder tree (4 rounds x log2(16) + 1 register) + 16 issue cycles, 10 ns each
    assert b.digital_s == pytest.approx(32 * 22e-9 + (16 + 1 + 16) * 10e-9, rel=1e-12)
    latency = 32 * 35.16e-9 + 33 * 10e-9
    assert b.latency_s == pytest.approx(latency, rel=1e-12)
    assert b.dac_j == pytest.approx(8 * 4096 * 32 * 50e-15, rel=1e-12)        # 8 steps x 4096 word lines x 32 column slices
    assert b.cell_j == pytest.approx(8 * 4096 * 4096 * 2 * 15.8e-15, rel=1e-12)  # every weight cell read per step
    assert b.adc_j == pytest.approx(8 * 4096 * 16 * 2e-3 * 10e-9, rel=1e-12)   # 2 mW x 10 ns per conversion
    assert b.digital_j == pytest.approx((8 * 4096 * 16 + 2 * 4096 * 16) * 0.1e-12, rel=1e-12)
    assert b.buffer_j == pytest.approx((4096 * 1 + 4096 * 4) * 5e-12, rel=1e-12)  # int8 codes in, 32-bit out
    assert b.static_j == pytest.approx(0.05 * latency, rel=1e-12)
    assert b.offchip_bytes == 0.0 and b.spill_s == 0.0
    cost = op_cost(target, "xbar", work)
    assert cost.latency_s == pytest.approx(1.45512e-6, rel=1e-9)
    assert cost.energy_j == pytest.approx(b.energy_j, rel=1e-12)
    assert cost.energy_j == pytest.approx(
        52.4288e-9 + 4.24140e-6 + 10.48576e-6 + 65.536e-9 + 102.4e-9 + 0.05 * 1.45512e-6, rel=1e-5
    )


def test_analog_part_of_one_gemv(target):
    b = breakdown(target.device("xbar"), target.memory("lpddr"), linear())
    # reads + ADC: 32 rounds x 13.16 ns = 0.42 us of 1.46 us; a decode step's share is far smaller,
    # attention on the systolic array dominates it (bench/reproduce_pimllm.py)
    assert b.analog_s == pytest.approx(32 * 13.16e-9, rel=1e-12)
    assert b.analog_s / b.latency_s == pytest.approx(0.42112 / 1.45512, rel=1e-9)


def test_prefill_rows_stream_through(target):
    one = breakdown(target.device("xbar"), target.memory("lpddr"), linear(rows=1))
    many = breakdown(target.device("xbar"), target.memory("lpddr"), linear(rows=128))
    assert many.analog_s == pytest.approx(128 * one.analog_s, rel=1e-12)
    assert many.latency_s - 128 * 32 * 35.16e-9 == pytest.approx(33 * 10e-9, rel=1e-9)


def test_int4_weights_take_bit_slices_and_group_limits_rows(target):
    # symmetric int4: 3 magnitude bits over 1-bit cells = 3 slices, 6 columns per output
    t = work_tiling(target.device("xbar"), linear(wbits=4.0, group=32))
    assert (t.weight_slices, t.cols_per_output, t.outputs_per_crossbar) == (3, 6, 42)
    assert t.slice_k == 32 and t.k_slices == 128  # a column must not sum across two scale groups
    zero = work_tiling(target.device("xbar"), linear(wbits=4.0, zero=1))
    assert zero.weight_slices == 4  # codes minus zero points span 4 magnitude bits


def test_supports_only_integer_linears(target):
    xbar = target.device("xbar")
    assert supports(xbar, linear())
    assert not supports(xbar, linear(abits=32.0))  # float inputs cannot be bit-streamed
    unquantized = Work("llm.linear", 1.0, 32, 4.0, 4.0, 4.0, dims={"rows": 1, "n": 1, "k": 1})
    assert not supports(xbar, unquantized)
    assert not supports(xbar, Work("llm.softmax", 1.0, 32, 0.0, 4.0, 4.0))
    with pytest.raises(TargetError, match="2..8-bit integer inputs"):
        tile_linear(xbar, 16, 16, 1.6, 32.0)


def test_program_cost(target):
    xbar = target.device("xbar")
    t = work_tiling(xbar, linear())
    cost = program_cost(xbar, t)
    # 512 crossbars, 64 at a time: 8 waves x 256 rows x 10 ns; 4096 x 4096 x 2 cells x 3 pJ
    assert cost.latency_s == pytest.approx(8 * 256 * 10e-9, rel=1e-12)
    assert cost.energy_j == pytest.approx(4096 * 4096 * 2 * 3e-12 + 0.05 * 8 * 256 * 10e-9, rel=1e-12)


def test_adc_area(target):
    assert target.device("xbar").adc_area_mm2(1000) == pytest.approx(1000 * 32 * 1200e-6, rel=1e-12)

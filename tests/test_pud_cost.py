"""DRAM-PUD cost model: hand-computed command counts, latency and energy; target validation.

The DDR4 and host numbers are written out here (not read back from the preset) so that a changed
preset number fails a test and is updated deliberately.
"""

import math

import pytest

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets import load_target, op_cost
from pimc.targets.dram_pud import breakdown, supports
from pimc.targets.dram_pud.mechanism import accumulate, leaves_per_position, reduce_column

T_OP = (32.0 + 13.32) * 1e-9  # tRAS + tRP, DDR4-2400
E_ACT = 8 * 1.2 * (65 * (32.0 + 13.32) - 65 * 32.0 - 50 * 13.32) * 1e-12  # 8 chips x VDD x (IDD0 tRC - IDD3N tRAS - IDD2N tRP)
HOST_RATE = 8 * 3.6e9 * 32  # i7-9700K fp32 ops/s
HOST_BW = 38.4e9 * 0.84  # DDR4-2400 dual channel x the sustained fraction (RMMT, see the preset)
BUSY_W = 95.0  # i7-9700K package power while its cores run a kernel (TDP at the base clock, see the preset)
UNCORE_W = 7.6  # its uncore while the cores wait on the modules (AnandTech Coffee Lake, see the preset)


def linear(n, k, wbits, abits, rows=1, group=None):
    dims = {"rows": rows, "n": n, "k": k, "wgroup": group or k}
    return Work("llm.linear", 2.0 * rows * n * k, math.ceil(wbits), n * k * wbits / 8, rows * k * 4.0, rows * n * 4.0,
                dims=dims, weight_bits=wbits, act_bits=abits)


@pytest.mark.parametrize(("leaves", "carries", "ops", "made", "result"), [
    (0, 0, 0, 0, "none"),
    (1, 0, 0, 0, "leaf"),          # one selected weight row: the host reads it as is
    (0, 1, 0, 0, "scratch"),
    (2, 0, 16, 1, "scratch"),      # half adder: 10 + 2 copies x (2 weight rows + the constant-0 row)
    (3, 0, 16, 1, "scratch"),      # full adder on three weight rows
    (1, 1, 14, 1, "scratch"),      # half adder: weight row + carry + constant
    (2, 1, 14, 1, "scratch"),      # full adder: two weight rows and a carry
    (0, 3, 10, 1, "scratch"),      # full adder on scratch rows only
    (4, 0, 16 + 14, 2, "scratch"), # FA(3 rows) -> sum; HA(row, sum, 0)
])
def test_column_reduction_counts(leaves, carries, ops, made, result):
    col = reduce_column(leaves, carries)
    assert (col.ops, col.carries, col.result) == (ops, made, result)


def test_small_accumulation_by_hand():
    # 4 inputs, 1-bit weights, 2-bit activations: 2 inputs have bit 0 set, 2 are negative (bit 1).
    leaves = leaves_per_position([2, 2], q=1)
    assert leaves == [2, 2]
    acc = accumulate(leaves)
    # position 0: HA(w, w, 0) = 16 ops, carry; position 1: FA(w, w, carry) = 14 ops, carry; position 2: the carry
    assert (acc.ops, acc.adders, acc.result_rows, acc.width) == (30, 2, 3, 3)
    assert leaves_per_position([1, 0, 1], q=2) == [1, 1, 1, 1]


def test_small_gemv_cost_by_hand():
    target = load_target("ddr4-pud-x4")
    pud = target.device("pud")
    work = linear(1000, 4, 1, 2)  # binary weights, 2-bit activations, one block of 4 inputs, one chunk
    b = breakdown(target, pud, work)
    assert b.geometry.tasks == 1 and b.counts.task_ops == (30,) and b.counts.rows_read == 3
    # one task: its bank does 30 row ops back to back (tFAW: 60 ACT x 21/4 ns = 315 ns; commands:
    # 120 x 1.5 ns = 180 ns; CA bus: 120 x 0.833 ns = 100 ns)
    assert b.time.bank_s == pytest.approx(30 * T_OP)
    assert b.time.faw_s == pytest.approx(60 * 21e-9 / 4)
    assert b.dram.latency_s == pytest.approx(1.3596e-6)
    # 60 ACT (2 per row op) + 3 read-outs, 120 commands x 50 pJ, and the host's uncore (7.6 W) while
    # the modules compute
    assert b.dram.energy_j == pytest.approx((60 + 3) * E_ACT + 120 * 50e-12 + UNCORE_W * 1.3596e-6)
    assert E_ACT == pytest.approx(1.91808e-9)
    # host encode: 5 ops per input; 16 B in, 4 B out; package power while the cores run it
    enc_s = 3e-6 + max(20 / HOST_RATE, 20 / HOST_BW)
    assert b.encode.latency_s == pytest.approx(enc_s)
    assert b.encode.energy_j == pytest.approx(20 * 160e-12 + BUSY_W * enc_s)
    # host aggregate: 3 rows x 1000 outputs x 3 ops + 1000 (sign) + 3 x 1000 (scale, offset) + 4 (sums)
    read = 3 * math.ceil(1000 / 0.88 / 8)
    agg_bytes = read + 4 + 2000 + 4000
    agg_s = 3e-6 + max(13004 / HOST_RATE, agg_bytes / HOST_BW)
    assert b.aggregate.latency_s == pytest.approx(agg_s)
    total = op_cost(target, "pud", work)
    assert total.latency_s == pytest.approx(enc_s + 1.3596e-6 + agg_s)
    # 3.00062 us (encode) + 1.3596 us (DRAM) + 3.19944 us (aggregate: 6,433 B at 32.256 GB/s)
    assert total.latency_s == pytest.approx(7.5597e-6, rel=1e-4)
    assert total.offchip_bytes == pytest.approx(20 + agg_bytes)
    assert b.aggregate.energy_j == pytest.approx(agg_bytes * 160e-12 + BUSY_W * agg_s)
    # energy by hand: DRAM 0.121 uJ (ACT) + 0.006 uJ (commands) + 10.333 uJ (uncore, 7.6 W x 1.3596 us);
    # encode 95 W x 3.00062 us + 20 B x 160 pJ = 285.062 uJ; aggregate 95 W x 3.19944 us + 6,433 B x
    # 160 pJ = 304.976 uJ
    assert b.dram.energy_j == pytest.approx(10.4598e-6, rel=1e-4)
    assert total.energy_j == pytest.approx(600.498e-6, rel=1e-5)


def test_gemm_is_repeated_gemvs():
    target = load_target("ddr4-pud-x4")
    one = breakdown(target, target.device("pud"), linear(4096, 4096, 2, 8, group=128))
    eight = breakdown(target, target.device("pud"), linear(4096, 4096, 2, 8, rows=8, group=128))
    assert eight.dram.latency_s == pytest.approx(8 * one.dram.latency_s)
    assert eight.dram.energy_j == pytest.approx(8 * one.dram.energy_j)


def test_output_layer_geometry():
    # Llama-2-7B output layer at 2-bit weights and activations: 32 blocks of 128 inputs, one chunk
    # of 32,000 reliable columns (57,671 per row at 88%), every task on its own bank.
    target = load_target("ddr4-pud-x4")
    b = breakdown(target, target.device("pud"), linear(32000, 4096, 2, 2, group=128))
    assert (b.geometry.inputs, len(b.geometry.blocks), b.geometry.chunks) == (128, 32, (32000,))
    assert b.time.bank_s == pytest.approx(max(b.counts.task_ops) * T_OP)
    assert 0.1e-3 < b.dram.latency_s < 0.25e-3  # MVDRAM reports 0.14 ms in DRAM [S]


def test_supports_only_integer_linears():
    pud = load_target("ddr4-pud-x4").device("pud")
    assert supports(pud, linear(64, 64, 4, 8))
    assert supports(pud, linear(64, 64, 1.6, 8))  # ternary codes as 2-bit fields
    assert not supports(pud, linear(64, 64, 4, 32))  # float activations
    assert not supports(pud, linear(64, 64, 16, 8))  # f16 weights
    assert not supports(pud, Work("llm.softmax", 10, 32, 0, 4, 4))


def test_preset_host_is_the_i7_baseline():
    pud_target, cpu_target = load_target("ddr4-pud-x4"), load_target("cpu-i7-9700k")
    host = pud_target.device("cpu").model_dump(exclude={"description"})
    assert host == cpu_target.device("cpu").model_dump(exclude={"description"})
    assert pud_target.memory("dram").bandwidth_gb_per_s == cpu_target.memory("dram").bandwidth_gb_per_s
    assert pud_target.device("pud").memory == pud_target.device("cpu").memory == "dram"


@pytest.mark.parametrize(("override", "message"), [
    ("pud.reliable_fraction=1.5", "devices['pud'].reliable_fraction: Input should be less than or equal to 1"),
    ("pud.timing.tfaw_ns=0", "devices['pud'].timing.tfaw_ns: Input should be greater than 0"),
    ("pud.modules=3", "modules (3) must spread evenly over channels (2)"),
    ("pud.banks=16", "device 'pud' has no field 'banks'"),
])
def test_invalid_fields_are_named(override, message):
    with pytest.raises(TargetError) as e:
        load_target("ddr4-pud-x4", [override])
    assert message in str(e.value)


def test_host_must_be_a_cpu_of_the_target():
    target = load_target("ddr4-pud-x4", ["pud.host=gpu"])
    with pytest.raises(TargetError, match=r"devices\['pud'\].host: 'gpu' is not a cpu device of the target \(cpu devices: cpu\)"):
        op_cost(target, "pud", linear(64, 64, 4, 8))

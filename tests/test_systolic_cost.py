"""Systolic array cost model: hand-computed cycles (SCALE-Sim's output-stationary fold count) on the
32x32 int8 array of pimllm-rram / tpu-llm. Numbers are written out, not read from the preset."""

import pytest

from pimc.dialects.work import Work
from pimc.targets import load_target, op_cost
from pimc.targets.systolic import Gemm, breakdown

CLOCK = 100e6
OVERHEAD = 16  # the presets' per-op issue cycles (TPU v1 CISC CPI 10-20)
BW = 12.8e9


@pytest.fixture(scope="module", params=["pimllm-rram", "tpu-llm"])
def target(request):
    return load_target(request.param)


def test_gemm_fold_count(target):
    sa = target.device("sa")
    # [1, 4096] x [4096, 4096]: 1 x 128 folds of (2*32 + 32 + 4096 - 2) cycles
    assert Gemm(1, 4096, 4096).cycles(sa) == 128 * 4190
    # [64, 100] x [100, 33]: 2 x 2 folds of (94 + 100) cycles, twice
    assert Gemm(64, 33, 100, count=2).cycles(sa) == 2 * 4 * 194


def test_streamed_ternary_gemv(target):
    weight_bytes = 4096 * 4096 * 1.6 / 8 + 4096 * 2  # codes + one 16-bit scale per output channel
    work = Work("llm.linear", 2.0 * 4096 * 4096, 2, weight_bytes, 4096 * 4, 4096 * 4,
                dims={"rows": 1, "n": 4096, "k": 4096, "wgroup": 4096, "wzero": 0}, weight_bits=1.6, act_bits=8.0)
    cost = op_cost(target, "sa", work)
    compute_s = (128 * 4190 + OVERHEAD) / CLOCK  # 5.3656 ms, above the 0.27 ms of weight streaming
    assert weight_bytes / BW < compute_s
    assert cost.latency_s == pytest.approx(compute_s + 100e-9, rel=1e-12)
    assert cost.offchip_bytes == weight_bytes
    b = breakdown(target.device("sa"), target.memory("lpddr"), work)
    assert b.mac_j == pytest.approx(4096 * 4096 * 0.3e-12, rel=1e-12)
    sram = 128 * 1 * 4096 + 1 * 4096 * 4096 + 4096 * 4  # A per column fold, B once, 32-bit results
    assert b.sram_j == pytest.approx(sram * 5e-12, rel=1e-12)
    assert b.offchip_j == pytest.approx(weight_bytes * 40e-12, rel=1e-12)
    assert cost.energy_j == pytest.approx(b.mac_j + b.sram_j + b.offchip_j + 0.1 * cost.latency_s, rel=1e-12)


def test_decode_attention_reads_the_kv_cache(target):
    dims = {"queries": 1, "keys": 128, "heads": 32, "kv_heads": 32, "head_dim": 128}
    fp32_kv = 2 * 128 * 32 * 128 * 4 * 64  # the fp32 operand bytes the work counts do not spill: K, V stream as int8
    work = Work("llm.attention", 4.0 * 128 * 32 * 128 + 5 * 128 * 32, 32, 0.0, fp32_kv, 1.0, dims=dims)
    b = breakdown(target.device("sa"), target.memory("lpddr"), work)
    # per head: QKᵀ [1,128]x[128,128] and PV [1,128]x[128,128]: 4 folds x (94 + 128) cycles each
    assert b.array_cycles == 32 * 2 * 4 * 222
    # softmax 5/score + quantize Q, output, P (2 ops each); the cached K, V are already int8
    assert b.vector_cycles == (5 * 32 * 128 + 2 * (2 * 32 * 128 + 32 * 128)) // 32
    assert b.offchip_bytes == 2 * 128 * 32 * 128  # K and V, one byte each
    assert b.latency_s == pytest.approx((56832 + 1408 + OVERHEAD) / CLOCK + 100e-9, rel=1e-12)


def test_attention_latency_grows_with_context(target):
    def latency(keys):
        dims = {"queries": 1, "keys": keys, "heads": 16, "kv_heads": 16, "head_dim": 64}
        return op_cost(target, "sa", Work("llm.attention", 1.0, 32, 0.0, 1.0, 1.0, dims=dims)).latency_s

    assert latency(128) < latency(1024) < latency(4096)
    assert latency(4096) / latency(1024) > 3.5  # compute scales with the keys


def test_views_are_free_and_vector_ops_cost_cycles(target):
    view = op_cost(target, "sa", Work("llm.reshape", 0.0, 32, 0.0, 0.0, 0.0))
    assert (view.latency_s, view.energy_j, view.offchip_bytes) == (0.0, 0.0, 0.0)
    norm = op_cost(target, "sa", Work("llm.layernorm", 5.0 * 4096, 32, 4096 * 8, 4096 * 4, 4096 * 4))
    assert norm.latency_s == pytest.approx((640 + OVERHEAD) / CLOCK, rel=1e-12)  # 20480 ops / 32 lanes
    assert norm.offchip_bytes == 0.0


def test_scale_groups_are_separate_products(target):
    dims = {"rows": 1, "n": 4096, "k": 4096, "wgroup": 256, "wzero": 0}
    work = Work("llm.linear", 1.0, 2, 1.0, 1.0, 1.0, dims=dims, weight_bits=1.6, act_bits=8.0)
    b = breakdown(target.device("sa"), target.memory("lpddr"), work)
    assert b.array_cycles == 16 * 128 * (94 + 256)  # 16 groups x 128 column folds
    float_work = Work("llm.linear", 1.0, 32, 1.0, 1.0, 1.0, dims={"rows": 1, "n": 64, "k": 64})
    assert breakdown(target.device("sa"), target.memory("lpddr"), float_work).array_cycles == 16 * 2 * (94 + 64)  # 4 x 4 passes

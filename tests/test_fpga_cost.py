"""FPGA cycle/DMA model: hand-computed GEMMs (compute- and bandwidth-bound) and attention in both forms.

The preset's numbers are written out here on purpose (100 MHz, 84 PEs x 32 lanes, 12 broadcast PEs x
64 lanes, 1 us op overhead, 200 ns DMA latency, 120 pJ/B DRAM, 1 pJ/MAC, 2 pJ/vector op, 1 pJ/B on
chip, 4 W static), so a changed preset shows up here and must be updated deliberately.
"""

import pytest

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets import can_run, load_target, op_cost
from pimc.targets.fpga.cost import attention_gemm_phases, tphs_onchip_bytes, tphs_stages


def linear(m: int, n: int, k: int, wbits: float = 8, abits: float = 8) -> Work:
    return Work("llm.linear", 2.0 * m * n * k, 8, n * k * wbits / 8, m * k * 4, m * n * 4,
                dims={"rows": m, "n": n, "k": k}, weight_bits=wbits, act_bits=abits)


def attention(s: int, t: int, h: int, kv: int, d: int, tphs: bool = False) -> Work:
    return Work("llm.attention", 4.0 * s * t * h * d, 32, 0, 4 * (s * h * d + 2 * t * kv * d), 4 * s * h * d,
                dims={"queries": s, "keys": t, "heads": h, "kv_heads": kv, "head_dim": d},
                hints={"tphs": 1.0} if tphs else {})


def test_compute_bound_gemm():
    # 51 Gbps = 6.375 GB/s. 128x256x512: ceil(32768/84)=391 PE passes x ceil(512/32)=16 = 6256 cycles
    # = 62.56 us; bytes 131072 (W) + 65536 (X) + 32768 (Y) = 229376 -> 35.98 us < compute.
    target = load_target("zcu102-meadow", ["fpga.offchip_gbps=51"])
    cost = op_cost(target, "fpga", linear(128, 256, 512))
    assert cost.offchip_bytes == 229376
    assert cost.latency_s == pytest.approx(1e-6 + 200e-9 + 62.56e-6, rel=1e-12)
    dynamic_pj = 16_777_216 * 1.0 + 32768 * 2.0 + 2 * 229376 * 1.0 + 229376 * 120.0
    assert dynamic_pj == 44_826_624
    assert cost.energy_j == pytest.approx(44.826624e-6 + 4.0 * 63.76e-6, rel=1e-12)


def test_bandwidth_bound_gemv():
    # Decode 1x768x768 at 12 Gbps: 10 x 24 = 240 cycles (2.4 us) vs 591360 B / 1.5 GB/s = 394.24 us.
    cost = op_cost(load_target("zcu102-meadow"), "fpga", linear(1, 768, 768))
    assert cost.offchip_bytes == 589824 + 768 + 768
    assert cost.latency_s == pytest.approx(1.2e-6 + 394.24e-6, rel=1e-12)


def test_bandwidth_override_and_single_dma_engine():
    work = linear(1, 768, 768)
    slow = op_cost(load_target("zcu102-meadow", ["fpga.offchip_gbps=1"]), "fpga", work)
    assert slow.latency_s == pytest.approx(1.2e-6 + 591360 / 0.125e9, rel=1e-12)
    serial = op_cost(load_target("zcu102-meadow", ["fpga.dma_engines=1"]), "fpga", work)
    assert serial.latency_s == pytest.approx(1.2e-6 + 2.4e-6 + 394.24e-6, rel=1e-12)  # no overlap


def test_packed_weights_fetch_fewer_bytes_and_pay_the_unpack_unit():
    work = linear(1, 768, 768)
    packed = Work(**{**work.__dict__, "hints": {"packed_weight_bytes": 200_000.0, "pack_ids": 8_000_000.0}})
    cost = op_cost(load_target("zcu102-meadow"), "fpga", packed)
    assert cost.offchip_bytes == 200_000 + 1536
    # 8e6 ids / 32 per cycle = 250,000 cycles = 2.5 ms > 201,536 B / 1.5 GB/s: the unpack unit is the bottleneck.
    assert cost.latency_s == pytest.approx(1.2e-6 + 2.5e-3, rel=1e-12)
    # A real 768x768 packing: 768 x 384 IDs of C=2 / 32 per cycle = 9,216 cycles = 92.16 us, under the
    # DMA of 400,000 + 1,536 B at 1.5 GB/s = 267.69 us: packing pays in full.
    real = Work(**{**work.__dict__, "hints": {"packed_weight_bytes": 400_000.0, "pack_ids": 768.0 * 384}})
    assert op_cost(load_target("zcu102-meadow"), "fpga", real).latency_s == pytest.approx(1.2e-6 + 401_536 / 1.5e9, rel=1e-12)


def test_tphs_stages_and_attention_forms():
    # OPT-125M prefill of 128 tokens, one layer: 12 heads of 64.
    device = load_target("zcu102-meadow").device("fpga")
    stages = tphs_stages(device, attention(128, 128, 12, 12, 64))
    # one query token per PE: ceil(128/84) = 2 rounds x 128 keys x ceil(64/32); SV: ceil(128/12) = 11 x 128 x 1
    assert (stages.qk, stages.softmax, stages.sv) == (2 * 128 * 2, 2 * 512, 11 * 128)
    assert stages.total(12, 16) == 12 * 1408 + 512 + 1024 + 16
    phases = attention_gemm_phases(device, attention(128, 128, 12, 12, 64))
    assert [p.cycles for p in phases] == [2341 * 2, 2 * 6144 + 16, 1171 * 4]
    # H x S x T = 196,608 scores: written as fp32 and read back (score_bits = 32), probabilities written
    # and read as int8; Q, K (98,304 B each) in for QKᵀ, V in and the output out for PV
    hst = 12 * 128 * 128
    assert [p.offchip_bytes for p in phases] == [2 * 98304 + 4 * hst, 4 * hst + hst, hst + 2 * 98304]

    target = load_target("zcu102-meadow")
    gemm = op_cost(target, "fpga", attention(128, 128, 12, 12, 64))
    tphs = op_cost(target, "fpga", attention(128, 128, 12, 12, 64, tphs=True))
    assert gemm.offchip_bytes == 4 * 98304 + 10 * hst and tphs.offchip_bytes == 393216
    assert gemm.latency_s == pytest.approx(3 * 1.2e-6 + (4 * 98304 + 10 * hst) / 1.5e9, rel=1e-12)  # all DMA-bound
    assert tphs.latency_s == pytest.approx(1.2e-6 + 393216 / 1.5e9, rel=1e-12)  # DMA-bound: 262 us > 184 us


def test_streamed_transfers_use_the_stream_tile_of_the_target():
    # scores of the GEMM form stream through double buffers of stream_tile_bytes (4096 B in the preset),
    # never more than an eighth of the on-chip buffers
    work = attention(128, 128, 12, 12, 64)

    def tiles(overrides):
        device = load_target("zcu102-meadow", overrides).device("fpga")
        return {t.tile_bytes for p in attention_gemm_phases(device, work) for t in p.loads + p.stores}

    assert tiles([]) == {4096}
    assert tiles(["fpga.stream_tile_bytes=1024"]) == {1024}
    assert tiles(["fpga.bram_bytes=16000"]) == {2000}


def test_tphs_onchip_footprint():
    device = load_target("zcu102-meadow").device("fpga")
    # groups of 84 query tokens: 2 x (84*64 + 84*128*(4+1)) + K_h, V_h of two heads 2*2*128*64 + 84*64*4
    assert tphs_onchip_bytes(device, attention(128, 128, 12, 12, 64)) == 2 * (5376 + 53760) + 32768 + 21504
    # decode, one query over 2048 keys: 2 x (64 + 2048*5) + 4*2048*64 + 64*4
    assert tphs_onchip_bytes(device, attention(1, 2048, 12, 12, 64)) == 2 * (64 + 10240) + 524288 + 256


def test_supports_int8_linears_only():
    target = load_target("zcu102-meadow")
    assert can_run(target, "fpga", linear(1, 64, 64))
    assert can_run(target, "fpga", linear(1, 64, 64, wbits=4))
    assert not can_run(target, "fpga", linear(1, 64, 64, wbits=32))
    assert not can_run(target, "fpga", linear(1, 64, 64, abits=32))
    assert can_run(target, "fpga", attention(1, 8, 2, 1, 4))


def test_unknown_op_is_an_error():
    with pytest.raises(TargetError, match="no cost model for llm.foo"):
        op_cost(load_target("zcu102-meadow"), "fpga", Work("llm.foo", 1, 32, 0, 4, 4))


def test_tphs_with_the_q_projection_fused():
    # OPT-125M layer, 128-token prefill: the tphs pass's llm.fused (q linear 768 -> 12 x 64, then attention)
    work = Work("llm.fused", 0.0, 8, 768 * 768, 0, 0, weight_bits=8, act_bits=8,
                dims={"rows": 128, "n": 768, "k": 768, "queries": 128, "keys": 128, "heads": 12, "kv_heads": 12,
                      "head_dim": 64}, hints={"tphs": 1.0, "tphs_q": 1.0})
    target = load_target("zcu102-meadow")
    device = target.device("fpga")
    stages = tphs_stages(device, work)
    # Q_h on the parallel PEs, one token each: ceil(128/84) = 2 rounds x 64 outputs x ceil(768/32) = 24
    assert (stages.q, stages.qk, stages.softmax, stages.sv, stages.rope) == (3072, 512, 1024, 1408, 0)
    assert stages.total(12, 16) == 12 * (3072 + 512) + 1024 + 1408 + 16  # Q and QKᵀ share the PEs
    # the input rows stay on chip for all heads, the head's 64 x 768 slice of Wq double-buffered
    assert tphs_onchip_bytes(device, work) == 172544 + 128 * 768 + 2 * 64 * 768
    cost = op_cost(target, "fpga", work)
    # Wq, x, K, V in and the output out; Q is neither stored nor loaded: 983,040 B at 1.5 GB/s > 454.56 us of PEs
    assert cost.offchip_bytes == 768 * 768 + 4 * 128 * 768
    assert cost.latency_s == pytest.approx(1.2e-6 + 983_040 / 1.5e9, rel=1e-12)
    apart = op_cost(target, "fpga", linear(128, 768, 768)).latency_s + op_cost(target, "fpga", attention(128, 128, 12, 12, 64, tphs=True)).latency_s
    assert apart == pytest.approx(2 * 1.2e-6 + (786_432 + 393_216) / 1.5e9, rel=1e-12)  # Q written and read back
    assert cost.latency_s < apart

"""The PIM-LLM experiment (`pimc.studies.pimllm`): its decode step is what `pimc.estimate` schedules,
and its figures on tiny-llama are hand-computed from the mechanisms (one-row GEMVs on the baseline's
output-stationary array, attention folds on the same array in PIM-LLM)."""

from __future__ import annotations

import pytest

import pimc
from pimc.studies import pimllm

CLOCK = 100e6
ISSUE = 16  # cycles per op (the presets' op_overhead_cycles)
FIRST_ACCESS = 100e-9  # LPDDR latency before an op's first off-chip byte


@pytest.mark.parametrize("target", [pimllm.PIM_TARGET, pimllm.BASELINE_TARGET])
def test_decode_is_what_estimate_reports(target):
    step = pimllm.decode("tiny-llama", target, 32)
    report = pimc.estimate("tiny-llama", target, seq_len=1, context=32, wbits=pimllm.WBITS, abits=pimllm.ABITS,
                           group=pimllm.PER_CHANNEL).data["decode"]
    assert step.latency_s == pytest.approx(report["latency_s"], rel=1e-12)
    assert step.energy_j == pytest.approx(report["energy_j"], rel=1e-12)


def test_tiny_llama_decode_hand_computed():
    """tiny-llama: 2 layers, d 128, 4 heads / 2 KV heads of 32, FFN 344 (gated), vocab 512; one token
    at context 32."""
    pim, tpu = pimllm.pim_vs_tpu("tiny-llama", 32)
    # attention per layer: QKᵀ and PV per KV head as [2, 32] x [32, 32] (its two query heads stacked):
    # 1 fold of 94 + 32 cycles each, x 2 KV heads x 2 products = 504; vector unit 1408 ops / 32 lanes
    # = 44; + issue; + the first LPDDR access (the 4 KB int8 KV cache streams under the compute)
    assert pim.attention_s == pytest.approx(2 * ((504 + 44 + ISSUE) / CLOCK + FIRST_ACCESS), rel=1e-12)
    assert tpu.attention_s == pim.attention_s  # the same array
    # the baseline runs every linear as a one-row GEMV: ceil(N / 32) folds of (94 + K) cycles + issue,
    # compute-bound (+ the first access of its streamed weights); PIM-LLM runs them on crossbars and
    # every other op identically, so the arrays' busy times differ by exactly the linears
    def gemv(k: int, n: int) -> int:
        return -(-n // 32) * (94 + k) + ISSUE

    layer = gemv(128, 128) * 2 + gemv(128, 64) * 2 + gemv(128, 344) * 2 + gemv(344, 128)
    linears = 2 * layer + gemv(128, 512)  # + lm_head
    assert linears == 22392
    assert tpu.busy_s["sa"] - pim.busy_s["sa"] == pytest.approx(linears / CLOCK + 15 * FIRST_ACCESS, rel=1e-9)
    # 256 x 256 crossbars, 128 ternary outputs (G+, G- pairs) x 256 inputs each: q, k, v, o 1 each,
    # gate and up 3 (344 outputs), down 2 (344 inputs); 2 layers; lm_head 4 (512 outputs)
    assert pim.crossbars == 2 * (4 + 3 + 3 + 2) + 4 == 28 and pim.program_j > 0 and tpu.crossbars == 0


def test_gain_falls_as_context_grows():
    gains = []
    for context in (32, 128):
        pim, tpu = pimllm.pim_vs_tpu("tiny-llama", context)
        gains.append(tpu.latency_s / pim.latency_s)
    assert gains[0] > gains[1] > 1

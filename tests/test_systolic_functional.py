"""Systolic array functional model: fold-by-fold products equal integer numpy, the cycle-stepped fold
finishes when SCALE-Sim's formula (and the cost model) say, and int8 attention tracks the reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pimc.dialects import llm
from pimc.dialects.llm_semantics import KERNELS
from pimc.dialects.systolic_semantics import (
    ArrayShape, CycleCounter, os_matmul, simulate_fold, systolic_attention, systolic_linear,
)
from pimc.targets import load_target
from pimc.targets.systolic import Gemm


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 70), st.integers(1, 9), st.integers(1, 9),
       st.integers(0, 2**16))
def test_os_matmul_exact_and_cycles_match_cost_model(m, k, n, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, size=(m, k))
    b = rng.integers(-128, 128, size=(k, n))
    product, cycles = os_matmul(a, b, ArrayShape(rows, cols))
    np.testing.assert_array_equal(product, a @ b)
    sa = load_target("tpu-llm").device("sa").model_copy(update={"rows": rows, "cols": cols})
    assert cycles == Gemm(m, n, k).cycles(sa)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**16))
def test_cycle_stepped_fold(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    r_used, c_used = rng.integers(1, rows + 1), rng.integers(1, cols + 1)
    a = rng.integers(-128, 128, size=(r_used, k))
    b = rng.integers(-128, 128, size=(k, c_used))
    array = ArrayShape(rows, cols)
    result, cycles = simulate_fold(a, b, array)
    np.testing.assert_array_equal(result, a @ b)
    assert cycles == array.fold_cycles(k) == 2 * rows + cols + k - 2


def test_int8_attention_tracks_float_reference_and_counts_cycles():
    rng = np.random.default_rng(1)
    s, t, h, kv, d = 1, 40, 4, 2, 16
    q = rng.standard_normal((s, h, d)).astype(np.float32)
    k = rng.standard_normal((t, kv, d)).astype(np.float32)
    v = rng.standard_normal((t, kv, d)).astype(np.float32)
    pos = np.array([29])
    params = {"heads": h, "kv_heads": kv, "head_dim": d, "scale": d**-0.5, "causal": True}
    counter = CycleCounter()
    got = systolic_attention(q, k, v, pos, params, ArrayShape(32, 32), counter)
    ref = KERNELS["llm.attention"]((q, k, v, pos), params, ())
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()  # int8 operands
    # per KV head: QKᵀ [2, 16] x [16, 40] (1 x 2 folds), PV [2, 40] x [40, 16] (1 fold)
    assert counter.cycles == kv * (2 * (94 + 16) + (94 + 40))


def test_systolic_linear_matches_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 96)).astype(np.float32)
    w = rng.standard_normal((20, 96)).astype(np.float32)
    wq, aq = llm.QuantAttr("ternary", 32), llm.QuantAttr("int8", 1, scale="per_channel")
    got = systolic_linear(x, w, None, wq, aq, ArrayShape(32, 32))
    ref = KERNELS["llm.linear"]((x, w), {"wquant": wq, "aquant": aq}, ())
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)

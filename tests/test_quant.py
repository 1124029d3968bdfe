"""Weight quantization: `fake_quantize` on hand-computed examples and `QuantAttr` storage sizes."""

from __future__ import annotations

import numpy as np
import pytest

from pimc.dialects.llm import QuantAttr
from pimc.dialects.llm_semantics import KERNELS, fake_quantize

INT4 = QuantAttr("int4", 4)


def test_int4_per_group_hand_computed():
    w = np.array([[3.5, -1.2, 0.3, 0.0, 2.6, 7.0, -0.4, -4.5]], dtype=np.float32)
    # group 0: max|w| = 3.5 -> scale 0.5; w/s = [7, -2.4, 0.6, 0]  -> codes [7, -2, 1, 0]
    # group 1: max|w| = 7.0 -> scale 1.0; w/s = [2.6, 7, -0.4, -4.5] -> codes [3, 7, 0, -4] (np.rint: ties to even)
    want = np.array([[3.5, -1.0, 0.5, 0.0, 3.0, 7.0, 0.0, -4.0]], dtype=np.float32)
    got = fake_quantize(w, INT4)
    assert got.dtype == np.float32 and got.shape == w.shape
    np.testing.assert_array_equal(got, want)
    # one group over all 8 (per_channel): scale 1.0 -> [4, -1, 0, 0, 3, 7, 0, -4]
    np.testing.assert_array_equal(
        fake_quantize(w, QuantAttr("int4", 4, "per_channel")),
        np.array([[4.0, -1.0, 0.0, 0.0, 3.0, 7.0, 0.0, -4.0]], dtype=np.float32),
    )


def test_int4_group_not_dividing_k():
    # K = 6, group 4: the second group is [w4, w5] (zero padding does not change max|w|)
    w = np.array([[0.7, 0.0, 0.0, 0.0, 1.4, -0.35]], dtype=np.float32)
    got = fake_quantize(w, INT4)
    np.testing.assert_allclose(got, [[0.7, 0, 0, 0, 1.4, -0.4]], atol=1e-6)


def test_int4_codes_stay_in_symmetric_range():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 32)).astype(np.float32)
    got = fake_quantize(w, QuantAttr("int4", 8))
    scale = np.abs(w.reshape(6, 4, 8)).max(axis=-1, keepdims=True) / 7
    codes = got.reshape(6, 4, 8) / scale
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-4)
    assert codes.min() >= -7 - 1e-4 and codes.max() <= 7 + 1e-4
    # the largest magnitude of each group is represented exactly (code ±7)
    np.testing.assert_allclose(np.abs(got.reshape(6, 4, 8)).max(-1), np.abs(w.reshape(6, 4, 8)).max(-1), rtol=1e-6)
    # round to nearest: error at most half a step
    assert np.all(np.abs(got - w).reshape(6, 4, 8) <= scale / 2 + 1e-6)


def test_zero_group_stays_zero():
    w = np.array([[0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 0.5, 0.25]], dtype=np.float32)
    got = fake_quantize(w, INT4)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[0, :4], 0.0)


@pytest.mark.parametrize(
    "quant",
    [
        QuantAttr("int4", 4),
        QuantAttr("int4", 16),
        QuantAttr("int8", 8),
        QuantAttr("int3", 8, "per_channel"),
        QuantAttr("int4", 8, "per_tensor"),
        QuantAttr("int4", 8, symmetric=False),
        QuantAttr("int2", 8),
        QuantAttr("binary", 8),
        QuantAttr("f16", 1),
        QuantAttr("bf16", 1),
    ],
    ids=lambda q: f"{q.format.data}-{q.scale.data}-{q.group.data}",
)
def test_quantize_is_idempotent(quant):
    w = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    once = fake_quantize(w, quant)
    twice = fake_quantize(once, quant)
    np.testing.assert_allclose(twice, once, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(once, w)  # it did quantize


def test_ternary_second_pass_keeps_codes_but_not_scale():
    """BitNet absmean is not idempotent (documented): the zero pattern and signs survive, the scale shrinks
    to absmean of the first output, i.e. s * (fraction of non-zero codes)."""
    w = np.array([[0.9, -0.1, 0.5, -1.0]], dtype=np.float32)
    q = QuantAttr("ternary", 4)
    once = fake_quantize(w, q)  # [s, 0, s, -s] with s = 0.625
    twice = fake_quantize(once, q)
    np.testing.assert_array_equal(np.sign(twice), np.sign(once))
    np.testing.assert_allclose(twice, once * 0.75, atol=1e-7)  # 3 of 4 codes non-zero


def test_ternary_values_per_group():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(4, 24)).astype(np.float32)
    got = fake_quantize(w, QuantAttr("ternary", 8)).reshape(4, 3, 8)
    s = np.abs(w.reshape(4, 3, 8)).mean(axis=-1)  # absmean scale of each group
    for r in range(4):
        for g in range(3):
            values = set(np.round(got[r, g] / s[r, g], 5).tolist())
            assert values <= {-1.0, 0.0, 1.0}, values
    # hand example: absmean of [0.9, -0.1, 0.5, -1.0] is 0.625; w/s = [1.44, -0.16, 0.8, -1.6]
    small = np.array([[0.9, -0.1, 0.5, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(fake_quantize(small, QuantAttr("ternary", 4)), [[0.625, 0.0, 0.625, -0.625]], atol=1e-7)


def test_f16_equals_numpy_half_round_trip():
    w = np.random.default_rng(3).normal(scale=3.0, size=(7, 9)).astype(np.float32)
    w[0, 0] = 1.0 + 2.0**-12  # below half precision: rounds to 1.0
    got = fake_quantize(w, QuantAttr("f16", 1))
    np.testing.assert_array_equal(got, w.astype(np.float16).astype(np.float32))
    assert got[0, 0] == 1.0


def test_bf16_keeps_upper_16_bits_rounded_to_nearest_even():
    w = np.array([[1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-9, -2.5]], dtype=np.float32)
    got = fake_quantize(w, QuantAttr("bf16", 1))
    # bf16 has 7 mantissa bits: 1 + 2^-8 is a tie -> even (1.0); 1 + 3*2^-8 is a tie -> even (1 + 2^-6)
    np.testing.assert_array_equal(got, np.array([[1.0, 1.0 + 2.0**-6, 1.0, -2.5]], dtype=np.float32))
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)


def test_asymmetric_int4_hand_computed():
    w = np.array([[0.0, 1.5, 0.2, 3.0]], dtype=np.float32)
    # min 0, max 3 -> scale 0.2, zero 0; codes rint([0, 7.5, 1, 15]) = [0, 8, 1, 15]
    got = fake_quantize(w, QuantAttr("int4", 4, symmetric=False))
    np.testing.assert_allclose(got, [[0.0, 1.6, 0.2, 3.0]], atol=1e-6)


def test_linear_kernel_uses_quantized_weight():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    w = rng.normal(size=(5, 8)).astype(np.float32)
    q = QuantAttr("int4", 4)
    got = KERNELS["llm.linear"]((x, w), {"wquant": q}, ())
    np.testing.assert_allclose(got, x @ fake_quantize(w, q).T, rtol=1e-6, atol=1e-6)
    assert np.abs(got - x @ w.T).max() > 1e-3


def test_storage_bytes_int4_group32_hand_computed():
    q = QuantAttr("int4", 32, "per_group", 16)
    # 64*128 codes of 4 bits + 64 rows * (128/32 = 4 groups) * 2-byte scales
    assert q.scale_count((64, 128)) == 64 * 4
    assert q.storage_bytes((64, 128)) == 64 * 128 * 4 / 8 + 64 * 4 * 2 == 4608


@pytest.mark.parametrize(
    ("quant", "shape", "expected"),
    [
        (QuantAttr("int4", 32, symmetric=False), (64, 128), 64 * 128 / 2 + 64 * 4 * 2 * 2),  # scale + zero
        (QuantAttr("int8", 32, "per_channel", 32), (64, 128), 64 * 128 + 64 * 4),
        (QuantAttr("int4", 32, "per_tensor", 32), (64, 128), 64 * 128 / 2 + 4),
        (QuantAttr("int4", 48), (2, 100), 2 * 100 / 2 + 2 * 3 * 2),  # ceil(100 / 48) = 3 groups
        (QuantAttr("f16", 32), (64, 128), 64 * 128 * 2),  # no scales
        (QuantAttr("ternary", 64), (64, 128), 64 * 128 * 1.6 / 8 + 64 * 2 * 2),
    ],
)
def test_storage_bytes_layouts(quant, shape, expected):
    assert quant.storage_bytes(shape) == pytest.approx(expected)


def test_activation_quantization_equals_integer_product_of_codes():
    """With wquant and aquant, the reference linear equals sx * sw * (integer codes product)."""
    from pimc.dialects.llm_semantics import KERNELS, quantize_matrix

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 64)).astype(np.float32)
    w = rng.normal(size=(5, 64)).astype(np.float32)
    wq, aq = QuantAttr("int4", 64, scale="per_channel"), QuantAttr("int8", 1, scale="per_channel")
    y = KERNELS["llm.linear"]((x, w), {"wquant": wq, "aquant": aq}, ())
    xm, wm = quantize_matrix(x, aq), quantize_matrix(w, wq)
    assert np.abs(xm.signed_codes()).max() <= 127 and np.abs(wm.signed_codes()).max() <= 7
    integer = xm.signed_codes() @ wm.signed_codes().T  # exact int64
    expected = integer * xm.scale.reshape(3, 1) * wm.scale.reshape(1, 5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_quantize_pass_sets_activation_quant(tmp_path):
    from pimc.frontends import build_module, read_model
    from pimc.ir import make_context
    from pimc.dialects import llm
    from pimc.passes import QuantizePass

    module = build_module(read_model("tiny-llama").config, 4, 8)
    QuantizePass(bits=4, group=32, abits=8).apply(make_context(), module)
    linears = [op for op in module.walk() if isinstance(op, llm.LinearOp)]
    assert linears and all(op.aquant == QuantAttr("int8", 1, scale="per_channel") for op in linears)
    assert all(op.wquant == QuantAttr("int4", 32) for op in linears)

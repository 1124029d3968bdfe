"""Functional crossbar MVM: exact with an ideal ADC (== integer numpy), bounded error when the ADC
quantizes and clips, deterministic seeded noise, and a quantized linear that matches the reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pimc.dialects import llm
from pimc.dialects.cim_semantics import AdcStats, CrossbarConfig, cim_linear, crossbar_mvm
from pimc.dialects.llm_semantics import KERNELS
from pimc.targets.cim.tiling import magnitude_bits

# weight bits -> (smallest, largest) signed code as the quantizer produces them
WEIGHT_LEVELS = {1.0: (-1, 1), 1.6: (-1, 1), 2.0: (-1, 1), 4.0: (-7, 7), 8.0: (-127, 127)}


@st.composite
def problems(draw, adc_mode="ideal"):
    wbits = draw(st.sampled_from(sorted(WEIGHT_LEVELS)))
    abits = draw(st.integers(1, 8))
    cell_bits = draw(st.sampled_from([1, 2, 4]))
    slices = -(-magnitude_bits(wbits, False) // cell_bits)
    cfg = CrossbarConfig(
        slice_k=draw(st.integers(1, 40)), weight_slices=slices, cell_bits=cell_bits, act_bits=abits,
        dac_bits=draw(st.integers(1, 4)), adc_bits=draw(st.integers(3, 10)),
        analog_subtract=draw(st.booleans()), adc_mode=adc_mode,
        adc_full_scale=draw(st.sampled_from([1.0, 0.5, 0.25])),
    )
    rows, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 90)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    lo, hi = WEIGHT_LEVELS[wbits]
    w = rng.integers(lo, hi + 1, size=(n, k))
    if wbits == 1.0:
        w = np.where(w >= 0, 1, -1)  # binary codes are never 0
    x = rng.integers(-(2 ** (abits - 1)), 2 ** (abits - 1), size=(rows, k))
    return x, w, cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_ideal_adc_equals_integer_numpy(problem):
    x, w, cfg = problem
    partial = crossbar_mvm(x, w, cfg)
    assert partial.dtype == np.int64
    assert partial.shape == (x.shape[0], -(-x.shape[1] // cfg.slice_k), w.shape[0])
    np.testing.assert_array_equal(partial.sum(axis=1), x @ w.T)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(adc_mode="saturate"))
def test_saturating_adc_error_within_analytical_bound(problem):
    x, w, cfg = problem
    stats = AdcStats()
    partial = crossbar_mvm(x, w, cfg, stats=stats)
    k_slices = partial.shape[1]
    error = np.abs(partial.sum(axis=1) - x @ w.T)
    assert error.max(initial=0) <= cfg.error_bound(k_slices) + 1e-9
    assert stats.max_abs_error <= cfg.conversion_error_bound() + 1e-9


def test_eight_bit_adc_on_256_rows_hand_checked():
    # 256 binary cells all on, every input bit 1: the column reaches 256, the 8-bit ADC tops out at 255
    cfg = CrossbarConfig(slice_k=256, weight_slices=1, cell_bits=1, act_bits=2, dac_bits=1, adc_bits=8,
                         analog_subtract=False, adc_mode="saturate")
    assert cfg.adc_lsb() == 1.0 and cfg.conversion_error_bound() == 1.0
    x = np.full((1, 256), 1)  # code 1 = bits (1, 0): one step with level 1, sign step with level 0
    w = np.ones((1, 256), dtype=np.int64)
    assert crossbar_mvm(x, w, cfg).sum() == 255  # exact would be 256
    assert crossbar_mvm(x, w, CrossbarConfig(**{**cfg.__dict__, "adc_mode": "ideal"})).sum() == 256
    # signed analog subtraction doubles the span: the LSB becomes 2
    signed = CrossbarConfig(**{**cfg.__dict__, "analog_subtract": True})
    assert signed.adc_lsb() == 2.0 and signed.conversion_error_bound() == 2.0


def test_noise_is_seeded_and_reported():
    cfg = CrossbarConfig(slice_k=64, weight_slices=1, cell_bits=1, act_bits=8, dac_bits=1, adc_bits=8, noise_sigma=0.8)
    rng = np.random.default_rng(3)
    x = rng.integers(-127, 128, size=(2, 128))
    w = rng.integers(-1, 2, size=(16, 128))
    runs = []
    for _ in range(2):
        stats = AdcStats()
        runs.append((crossbar_mvm(x, w, cfg, np.random.default_rng(7), stats), stats))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # same seed, same result
    assert runs[0][1].max_abs_error > 0 and runs[0][1].conversions == 8 * 2 * 2 * 16
    assert not np.array_equal(runs[0][0].sum(axis=1), x @ w.T)


@pytest.mark.parametrize(("fmt", "group", "scale"), [("ternary", 32, "per_group"), ("int4", 64, "per_group"),
                                                     ("binary", 256, "per_group"), ("int8", 1, "per_channel")])
def test_quantized_linear_matches_reference(fmt, group, scale):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    weight = rng.standard_normal((40, 256)).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    wquant = llm.QuantAttr(fmt, group, scale=scale)
    aquant = llm.QuantAttr("int8", 1, scale="per_channel")
    slice_k = min(group, 128) if scale == "per_group" else 128
    mag = {"ternary": 1, "binary": 1, "int4": 3, "int8": 7}[fmt]
    cfg = CrossbarConfig(slice_k=slice_k, weight_slices=mag, cell_bits=1, act_bits=8, dac_bits=1, adc_bits=8)
    got = cim_linear(x, weight, bias, wquant, aquant, cfg)
    ref = KERNELS["llm.linear"]((x, weight, bias), {"wquant": wquant, "aquant": aquant}, ())
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)

"""PUD simulators: bit-plane path == command emulator == integer numpy, with equal command counts."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pimc.dialects import llm
from pimc.dialects.llm_semantics import quantize_matrix
from pimc.dialects.pud_semantics import Subarray, activation_bits, emulate_gemv, gemv_bitplanes, weight_fields
from pimc.targets import load_target
from pimc.targets.dram_pud.mechanism import gemv_geometry

DEVICE = load_target("ddr4-pud-x4").device("pud")
FORMATS = ["binary", "ternary"] + [f"int{b}" for b in range(2, 9)]


@st.composite
def gemvs(draw, max_n=300, max_k=700):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    fmt = draw(st.sampled_from(FORMATS))
    symmetric = fmt in ("binary", "ternary") or draw(st.booleans())
    layout = draw(st.sampled_from(["per_group", "per_channel", "per_tensor"]))
    group = draw(st.sampled_from([8, 32, 64, 128]))
    p = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((n, k)).astype(np.float32)
    quant = llm.QuantAttr(fmt, group, scale=layout, symmetric=symmetric)
    fields = weight_fields(quantize_matrix(weight, quant), quant)
    codes = rng.integers(-(2 ** (p - 1)), 2 ** (p - 1), size=k)  # the whole p-bit two's-complement range
    return fields, codes, p


def integer_reference(fields, codes):
    groups = np.arange(fields.k) // fields.qgroup
    return np.stack([fields.u[:, groups == g] @ codes[groups == g] for g in range(fields.offset.shape[1])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gemvs())
def test_bitplanes_equal_integer_numpy(case):
    fields, codes, p = case
    geo = gemv_geometry(DEVICE, fields.n, fields.k, fields.q, p, fields.qgroup)
    partial, counts = gemv_bitplanes(codes, fields, geo, DEVICE.reliable_fraction)
    assert np.array_equal(partial, integer_reference(fields, codes))
    assert len(counts.task_ops) == geo.tasks
    # the dequantized dot product the host finishes with is the integer matmul of codes and weights
    dots = fields.mult * partial - fields.offset.T * np.stack(
        [codes[np.arange(fields.k) // fields.qgroup == g].sum() for g in range(fields.offset.shape[1])])[:, None]
    assert np.array_equal(dots.sum(axis=0), fields.integer_weights() @ codes)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gemvs())
def test_emulator_equals_bitplanes_and_counts(case):
    fields, codes, p = case
    geo = gemv_geometry(DEVICE, fields.n, fields.k, fields.q, p, fields.qgroup)
    partial, counts = gemv_bitplanes(codes, fields, geo, DEVICE.reliable_fraction)
    emulated = emulate_gemv(codes, fields, geo, DEVICE.reliable_fraction)
    assert np.array_equal(emulated.partial, partial)
    assert emulated.task_ops == counts.task_ops
    assert emulated.rows_read == counts.rows_read
    assert emulated.peak_rows <= geo.scratch  # the layout reserved enough scratch rows


def test_weight_fields_by_hand():
    quant = llm.QuantAttr("int2", 4)  # symmetric codes -1..1 stored offset-binary: u = code + 2
    fields = weight_fields(quantize_matrix(np.array([[1.0, -1.0, 0.0, 0.6]], np.float32), quant), quant)
    assert fields.u.tolist() == [[3, 1, 2, 3]] and fields.offset.tolist() == [[2]] and fields.q == 2
    binary = llm.QuantAttr("binary", 2)
    fields = weight_fields(quantize_matrix(np.array([[0.5, -2.0]], np.float32), binary), binary)
    assert fields.u.tolist() == [[1, 0]] and fields.mult == 2 and fields.integer_weights().tolist() == [[1, -1]]


def test_two_complement_bits():
    assert activation_bits(np.array([3, -3, -4]), 3).T.tolist() == [[1, 1, 0], [1, 0, 1], [0, 0, 1]]


def test_full_adder_truth_table():
    # the 8 input combinations side by side in 8 columns of one subarray
    sub = Subarray(8, 0, 0)
    a, b, c = 0b11110000, 0b11001100, 0b10101010
    for name, v in (("a", a), ("b", b), ("c", c)):
        sub.rows[name], sub.rows["~" + name] = v, ~v & 0xFF
    from pimc.dialects.pud_semantics import _Operand

    s, carry = sub.full_adder(*(_Operand(x, "~" + x, True) for x in "abc"))
    assert sub.rows[s.true] == a ^ b ^ c and sub.rows[s.comp] == ~(a ^ b ^ c) & 0xFF
    assert sub.rows[carry.true] == (a & b) | (a & c) | (b & c)
    assert sub.ops == 10 + 2 * 3  # three surviving inputs are copied first


def test_unreliable_columns_corrupt_only_themselves():
    sub = Subarray(8, 0b10000001, 7)
    sub.rows["x"], sub.rows["y"], sub.rows["z"] = 0b00111100, 0b00111100, 0
    sub.maj("x", "y", "z")
    assert sub.rows["z"] & 0b01111110 == 0b00111100
    garbage = {sub.garbage[i] for i in range(len(sub.garbage))}
    assert len(garbage) > 1  # the two unreliable columns do flip

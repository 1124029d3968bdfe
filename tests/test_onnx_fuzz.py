"""Mutated bytes of real fixture files never make the ONNX importer raise anything but a PimcError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pimc.errors import PimcError
from pimc.frontends import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
FILES = sorted(p for p in FIXTURES.glob("*.onnx") if p.stat().st_size < 3_000_000)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(FILES)).read_bytes())
    kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    i = draw(st.integers(0, len(data)))
    return bytes(data[:i] + draw(st.binary(min_size=1, max_size=64)) + data[i:])


@pytest.mark.skipif(not FILES, reason="no ONNX fixtures")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_onnx_raises_only_pimc_errors(blob):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(blob)
        try:
            read_model(str(path)).build(3, 8)
        except PimcError as e:
            assert str(e) and "\n" not in str(e).strip()

"""Weight store: bfloat16 safetensors (numpy has no bf16) are widened exactly."""

import json
import struct

import numpy as np

from pimc.frontends.weights import _read_tensors


def test_bf16_tensor_widens_to_the_same_float32(tmp_path):
    values = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    words = (values.view(np.uint32) >> 16).astype("<u2")  # truncate to bfloat16
    expected = (words.astype(np.uint32) << 16).view(np.float32)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3, 5], "data_offsets": [0, words.nbytes]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + words.tobytes())
    loaded = dict(_read_tensors([path]))
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], expected)
    assert np.abs(loaded["w"] - values).max() < 2e-2  # bf16 keeps 8 mantissa bits

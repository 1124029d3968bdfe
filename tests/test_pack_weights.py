"""MEADOW weight packing: lossless round trips (hypothesis) and a hand-computed compression ratio."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pimc.errors import PimcError
from pimc.targets.fpga.packing import PackedMatrix, fixed_width_bytes, pack_matrix

HAND = np.array(
    [
        [1, 2, 1, 2, 1, 2, 3, 4],
        [1, 2, 1, 2, 5, 6, 3, 4],
        [1, 2, 3, 4, 1, 2, 1, 2],
        [7, 8, 1, 2, 1, 2, 3, 4],
    ]
)


def test_hand_computed_ratio():
    p = pack_matrix(HAND, chunk=2, code_bits=8, packet=4)
    # (1,2) x10 -> ID 0, (3,4) x4 -> 1, (5,6) x1 -> 2, (7,8) x1 -> 3 (ties: ascending chunk)
    assert p.table.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert p.ids.tolist() == [0, 0, 0, 1, 0, 0, 2, 1, 0, 1, 0, 0, 3, 0, 0, 1]
    assert p.widths.tolist() == [1, 2, 1, 2]  # packet = one row here
    assert p.stream_bits == 4 * 5 + 4 * (1 + 2 + 1 + 2)  # 44 bits -> 6 bytes
    assert (p.table_bytes, p.stream_bytes, p.raw_bytes) == (8, 6, 32)
    assert p.ratio == 32 / 14
    assert fixed_width_bytes(p) == 8 + 4  # 16 IDs x 2 bits


def test_frequency_order_shortens_ids():
    codes = np.array([[9, 9, 9, 9, 9, 9, 0, 1]])  # 9 is frequent but not the smallest code
    freq = pack_matrix(codes, chunk=1, code_bits=8, packet=2)
    plain = pack_matrix(codes, chunk=1, code_bits=8, packet=2, frequency_order=False)
    assert freq.ids.tolist() == [0, 0, 0, 0, 0, 0, 1, 2] and freq.widths.tolist() == [1, 1, 1, 2]
    assert plain.ids.tolist() == [2, 2, 2, 2, 2, 2, 0, 1] and plain.widths.tolist() == [2, 2, 2, 1]
    assert freq.stream_bits < plain.stream_bits


def test_padding_of_the_last_chunk_is_dropped():
    codes = np.arange(-7, 8).reshape(3, 5)
    p = pack_matrix(codes, chunk=4, code_bits=4, packet=3)
    assert p.n_ids == 3 * 2 and np.array_equal(p.unpack(), codes)


def round_trip(codes: np.ndarray, chunk: int, packet: int) -> None:
    p = pack_matrix(codes, chunk, 8, packet)
    assert np.array_equal(p.unpack(), codes)
    ids, widths = PackedMatrix.decode_stream(p.encode_stream(), p.n_ids, packet)
    assert np.array_equal(ids, p.ids) and np.array_equal(widths, p.widths)
    assert len(p.encode_stream()) == p.stream_bytes


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(1, 40)), elements=st.integers(-127, 127)),
    st.sampled_from([1, 2, 3, 4, 8]),
    st.integers(1, 20),
)
def test_round_trip_random(codes, chunk, packet):
    round_trip(codes, chunk, packet)


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 16)), elements=st.integers(-3, 3)),
    st.integers(1, 6),
    st.sampled_from([1, 2, 4]),
    st.integers(1, 9),
)
def test_round_trip_structured(block, repeats, chunk, packet):
    codes = np.tile(block, (repeats, repeats))  # repeated rows and chunks: few unique chunks
    round_trip(codes, chunk, packet)
    rows = np.tile(block, (repeats, 1))  # repeating rows adds no new chunk
    assert pack_matrix(rows, chunk, 8, packet).unique == pack_matrix(block, chunk, 8, packet).unique


def test_bad_input_is_an_error():
    with pytest.raises(PimcError, match="2-D integer code matrix"):
        pack_matrix(np.zeros((2, 2), dtype=np.float32), 2, 8)
    with pytest.raises(PimcError, match="must be positive"):
        pack_matrix(HAND, 0, 8)


@pytest.mark.parametrize("chunk", [1, 3, 8, 9])
def test_unique_chunks_match_row_wise_unique(chunk):
    """Chunks compared as one 64-bit key (C x 8 bits <= 64) or row-wise (C = 9): np.unique's order and counts."""
    from pimc.targets.fpga.packing import _unique_chunks

    codes = np.random.default_rng(chunk).integers(-128, 128, (40, 9 * chunk))
    codes[::2] = codes[1::2]  # duplicated rows: repeated chunks
    chunks = codes.reshape(-1, chunk)
    table, inverse, counts = np.unique(chunks, axis=0, return_inverse=True, return_counts=True)
    ours = _unique_chunks(chunks)
    assert np.array_equal(ours[0], table) and np.array_equal(ours[1], inverse.reshape(-1)) and np.array_equal(ours[2], counts)
    assert np.array_equal(pack_matrix(codes, chunk, 8, 7).unpack(), codes)

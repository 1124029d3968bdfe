"""MEADOW weight packing (arXiv 2503.11663): a lossless unique-chunk table plus a packed ID stream.

A quantized weight matrix [N, K] of integer codes is cut along its inner dimension K into chunks of C
codes (the last chunk of a row padded with zeros). Each distinct chunk is stored once in a table, ordered
by decreasing frequency (ties: ascending chunk), so the most frequent chunk gets ID 0. The matrix becomes
a row-major stream of chunk IDs, cut into packets of `packet` IDs; each packet starts with a
`header_bits`-bit field giving the width w = max(1, bit_length(largest ID in the packet)) of its IDs,
followed by its IDs in w bits each. The FPGA's unpack unit reads the stream and looks each ID up in the
table. Unpacking returns exactly the original codes.

Sizes (what the off-chip DMA moves for the codes of one matrix):
    table_bytes  = ceil(U · C · code_bits / 8)
    stream_bytes = ceil(Σ_packets (header_bits + n_ids_in_packet · w_packet) / 8)
    ratio        = ceil(N · K · code_bits / 8) / (table_bytes + stream_bytes)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pimc.errors import PimcError

HEADER_BITS = 5
"""Per-packet ID-width field: widths 1..31 bits."""


@dataclass(frozen=True)
class PackedMatrix:
    shape: tuple[int, int]
    """[N, K] of the original codes."""
    chunk: int
    code_bits: int
    packet: int
    table: np.ndarray
    """[U, chunk] distinct chunks, most frequent first (int64 codes)."""
    ids: np.ndarray
    """[N · ceil(K / chunk)] chunk IDs, row-major (int64)."""
    widths: np.ndarray
    """ID width in bits of each packet (int64)."""
    header_bits: int = HEADER_BITS

    @property
    def unique(self) -> int:
        return int(self.table.shape[0])

    @property
    def n_ids(self) -> int:
        return int(self.ids.size)

    @property
    def raw_bytes(self) -> int:
        return math.ceil(self.shape[0] * self.shape[1] * self.code_bits / 8)

    @property
    def table_bytes(self) -> int:
        return math.ceil(self.table.size * self.code_bits / 8)

    @property
    def stream_bits(self) -> int:
        counts = np.full(self.widths.size, self.packet, dtype=np.int64)
        if self.widths.size:
            counts[-1] = self.n_ids - self.packet * (self.widths.size - 1)
        return int(self.header_bits * self.widths.size + np.dot(counts, self.widths))

    @property
    def stream_bytes(self) -> int:
        return math.ceil(self.stream_bits / 8)

    @property
    def packed_bytes(self) -> int:
        return self.table_bytes + self.stream_bytes

    @property
    def ratio(self) -> float:
        """Raw code bytes over packed bytes (> 1 means packing saves traffic)."""
        return self.raw_bytes / self.packed_bytes

    def unpack(self) -> np.ndarray:
        """The original [N, K] codes (int64)."""
        n, k = self.shape
        rows = self.table[self.ids].reshape(n, -1)
        return np.ascontiguousarray(rows[:, :k])

    # ------------------------------------------------------------------ the bit stream

    def encode_stream(self) -> bytes:
        """The packet stream as the DMA moves it: per packet a width header, then its IDs, MSB first."""
        bits: list[np.ndarray] = []
        for p, width in enumerate(self.widths.tolist()):
            ids = self.ids[p * self.packet : (p + 1) * self.packet]
            bits.append(_to_bits(np.asarray([width]), self.header_bits))
            bits.append(_to_bits(ids, width))
        flat = np.concatenate(bits) if bits else np.zeros(0, dtype=np.uint8)
        return np.packbits(flat).tobytes()

    @staticmethod
    def decode_stream(data: bytes, n_ids: int, packet: int, header_bits: int = HEADER_BITS) -> tuple[np.ndarray, np.ndarray]:
        """IDs and packet widths read back from `encode_stream`'s bytes (what the unpack unit does)."""
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        ids, widths, at = [], [], 0
        for start in range(0, n_ids, packet):
            count = min(packet, n_ids - start)
            width = int(_from_bits(bits[at : at + header_bits], header_bits)[0])
            at += header_bits
            ids.append(_from_bits(bits[at : at + count * width], width))
            widths.append(width)
            at += count * width
        return (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)), np.asarray(widths, dtype=np.int64)


def _to_bits(values: np.ndarray, width: int) -> np.ndarray:
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] >> shifts) & 1).astype(np.uint8).ravel()


def _from_bits(bits: np.ndarray, width: int) -> np.ndarray:
    weights = (1 << np.arange(width - 1, -1, -1, dtype=np.int64))
    return bits.reshape(-1, width).astype(np.int64) @ weights


def id_width(max_id: np.ndarray) -> np.ndarray:
    """Bits to write IDs up to `max_id`: at least 1."""
    return np.maximum(1, np.ceil(np.log2(max_id.astype(np.float64) + 1))).astype(np.int64)


def _unique_chunks(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of `chunks` in ascending lexicographic order, each row's index into them, and counts.

    When a chunk fits 64 bits (offset codes, first code most significant) the rows are compared as one
    unsigned key — the same order as row-wise `np.unique(axis=0)`, many times faster on large matrices."""
    if chunks.size == 0:
        return np.zeros((0, chunks.shape[1]), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low = int(chunks.min())
    span_bits = max(1, int(chunks.max() - low).bit_length())
    if span_bits * chunks.shape[1] > 64:
        table, inverse, counts = np.unique(chunks, axis=0, return_inverse=True, return_counts=True)
        return table, inverse.reshape(-1), counts
    keys = np.zeros(chunks.shape[0], dtype=np.uint64)
    for column in (chunks - low).astype(np.uint64).T:
        keys = (keys << np.uint64(span_bits)) | column
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return chunks[first], inverse.reshape(-1), counts


def pack_matrix(codes: np.ndarray, chunk: int, code_bits: int, packet: int = 64, frequency_order: bool = True) -> PackedMatrix:
    """Pack integer `codes` [N, K] (each representable in `code_bits` bits) into chunks of `chunk` codes."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise PimcError(f"weight packing needs a 2-D integer code matrix, got {codes.dtype} {list(codes.shape)}")
    if chunk <= 0 or packet <= 0:
        raise PimcError(f"weight packing: chunk ({chunk}) and packet ({packet}) must be positive")
    n, k = codes.shape
    pad = (-k) % chunk
    chunks = np.pad(codes.astype(np.int64), ((0, 0), (0, pad))).reshape(-1, chunk)
    table, inverse, counts = _unique_chunks(chunks)
    if frequency_order:
        order = np.argsort(-counts, kind="stable")  # ties keep np.unique's ascending chunk order
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        table, ids = table[order], rank[inverse]
    else:
        ids = inverse
    ids = ids.astype(np.int64)
    n_packets = math.ceil(ids.size / packet)
    maxima = np.maximum.reduceat(ids, np.arange(0, ids.size, packet)) if ids.size else np.zeros(0, dtype=np.int64)
    widths = id_width(maxima)
    if widths.size and widths.max() >= 1 << HEADER_BITS:
        raise PimcError(f"weight packing: {table.shape[0]} unique chunks need IDs wider than {2**HEADER_BITS - 1} bits")
    assert widths.size == n_packets
    return PackedMatrix((n, k), chunk, code_bits, packet, table, ids, widths)


def fixed_width_bytes(packed: PackedMatrix) -> int:
    """Table plus IDs all of one width (ceil(log2 U) bits): packing without per-packet widths."""
    width = int(id_width(np.asarray([packed.unique - 1]))[0])
    return packed.table_bytes + math.ceil(packed.n_ids * width / 8)

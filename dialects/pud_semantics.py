"""Semantics of the `pud` dialect: MVDRAM GeMVs evaluated bit for bit, two ways.

- `gemv_bitplanes` (fast, vectorized): evaluates the in-DRAM arithmetic on numpy bit-planes, per
  subarray segment: the popcounts of the selected weight rows (complement rows for the sign bit),
  weighted by 2^(k+i), then the host's sign correction; and counts the commands from the actual
  activation bits (`pimc.targets.dram_pud.mechanism`). Used by the interpreter for whole layers.
- `emulate_gemv` (slow, small GeMVs): executes the RowCopy / MAJ3 / MAJ5 sequence on rows stored
  as packed bit vectors of one subarray per task, with unreliable columns that compute garbage,
  and reads the result rows back from the reliable columns only.

Both return the integer partial dot products D[g, m] = sum_{j in quant group g} a_j u[m, j] of the
p-bit two's-complement activation codes a and the unsigned stored weight fields u, which must equal
integer numpy exactly, with the same command counts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import llm, pud
from pimc.dialects.llm_semantics import QuantizedMatrix, quantize_matrix
from pimc.targets.dram_pud.cost import GemvCounts, gemv_counts
from pimc.targets.dram_pud.mechanism import FIXED_ROWS, GemvGeometry, fa_ops

# --------------------------------------------------------------------------- stored weights


@dataclass(frozen=True)
class WeightFields:
    """A quantized [n, k] weight as the PUD stores it: unsigned q-bit fields u, value
    w = scale[m, g] * (mult * u[m, j] - offset[m, g]) for j in quantization group g."""

    u: np.ndarray
    """int64 [n, k], 0 <= u < 2^q."""
    q: int
    mult: int
    offset: np.ndarray
    """int64 [n, G]."""
    scale: np.ndarray
    """float32 [n, G]."""
    qgroup: int

    @property
    def n(self) -> int:
        return self.u.shape[0]

    @property
    def k(self) -> int:
        return self.u.shape[1]

    def integer_weights(self) -> np.ndarray:
        """mult * u - offset per input, int64 [n, k] (the integer codes the scales multiply)."""
        groups = np.arange(self.k) // self.qgroup
        return self.mult * self.u - self.offset[:, groups]


def weight_fields(qm: QuantizedMatrix, quant: llm.QuantAttr) -> WeightFields:
    """Unsigned fields of a quantized matrix: offset-binary for symmetric codes, zero points as offsets."""
    n, k = qm.shape
    fmt = quant.format.data
    codes = qm.codes.reshape(qm.codes.shape[0], -1)
    if quant.scale.data == "per_tensor":
        codes = codes.reshape(n, k)
        scale = np.broadcast_to(qm.scale.reshape(1, 1), (n, 1))
        zero = np.broadcast_to(qm.zero.reshape(1, 1), (n, 1))
        qgroup = k
    else:
        codes = codes[:, :k]
        scale, zero = qm.scale[:, :, 0], qm.zero[:, :, 0]
        qgroup = quant.group.data if quant.scale.data == "per_group" else k
    groups = scale.shape[1]
    if fmt == "binary":
        u, q, mult, offset = (codes + 1) // 2, 1, 2, np.ones((n, groups), np.int64)
    elif fmt == "ternary":
        u, q, mult, offset = codes + 1, 2, 1, np.ones((n, groups), np.int64)
    else:
        q = int(quant.code_bits)
        if quant.symmetric.data:
            u, mult, offset = codes + 2 ** (q - 1), 1, np.full((n, groups), 2 ** (q - 1), np.int64)
        else:
            u, mult, offset = codes, 1, zero.astype(np.int64)
    return WeightFields(
        np.ascontiguousarray(u, dtype=np.int64), q, mult, np.ascontiguousarray(offset, dtype=np.int64),
        np.ascontiguousarray(scale, dtype=np.float32), qgroup,
    )


def activation_bits(codes: np.ndarray, p: int) -> np.ndarray:
    """Two's-complement bits of p-bit codes: uint8 [p, ...], bit p-1 is the sign."""
    unsigned = np.asarray(codes, dtype=np.int64) & ((1 << p) - 1)
    return np.stack([(unsigned >> k) & 1 for k in range(p)]).astype(np.uint8)


def segments(geo: GemvGeometry) -> list[tuple[int, int, int]]:
    """(start, stop, quantization group) of every segment, blocks in order."""
    out, start = [], 0
    for block in geo.blocks:
        for size in block:
            out.append((start, start + size, start // geo.qgroup))
            start += size
    return out


def selected_counts(bits: np.ndarray, geo: GemvGeometry) -> list[list[int]]:
    """selected[s][k]: inputs of segment s whose activation bit k is set."""
    return [[int(c) for c in bits[:, a:b].sum(axis=1)] for a, b, _ in segments(geo)]


# --------------------------------------------------------------------------- fast path


def gemv_bitplanes(codes: np.ndarray, w: WeightFields, geo: GemvGeometry, reliable_fraction: float = 1.0) -> tuple[np.ndarray, GemvCounts]:
    """D [G, n] for one activation row of p-bit codes [k], evaluated on bit-planes, and its commands."""
    p, q = geo.p, w.q
    bits = activation_bits(codes, p)  # [p, k]
    planes = np.stack([(w.u >> i) & 1 for i in range(q)]).astype(np.int64)  # [q, n, k]
    out = np.zeros((w.offset.shape[1], w.n), dtype=np.int64)
    weights = np.array([[1 << (k + i) for i in range(q)] for k in range(p)], dtype=np.int64)  # [p, q]
    for a, b, g in segments(geo):
        sel = bits[:, a:b].astype(np.int64)  # [p, L]
        counts = np.einsum("kj,inj->kin", sel, planes[:, :, a:b])  # popcounts of selected rows
        negatives = int(sel[p - 1].sum())
        counts[p - 1] = negatives - counts[p - 1]  # the sign bit selects the complement rows
        value = np.einsum("kin,ki->n", counts, weights)
        out[g] += value - negatives * (1 << (p - 1)) * ((1 << q) - 1)
    return out, gemv_counts(reliable_fraction, geo, selected_counts(bits, geo))


# --------------------------------------------------------------------------- command emulator


@dataclass
class _Operand:
    true: str
    comp: str
    survives: bool
    """A weight or constant row: copy it before a destructive MAJ."""


class Subarray:
    """Rows of one subarray as packed bit vectors (Python ints over `columns` bits).

    `unreliable` columns compute garbage after every row operation (seeded, drawn from a pool), as
    profiled columns of real modules do; the layout never stores results there."""

    def __init__(self, columns: int, unreliable: int, seed: int):
        self.columns, self.unreliable = columns, unreliable
        self.full = (1 << columns) - 1
        self.reliable = self.full & ~unreliable
        self.rows: dict[str, int] = {"c0": 0, "c1": self.full}
        self.ops = 0
        rng = np.random.default_rng(seed)
        nbytes = (columns + 7) // 8
        self.garbage = [int.from_bytes(rng.bytes(nbytes), "little") & unreliable for _ in range(61)] if unreliable else [0]
        self.turn = 0
        self.free: list[str] = []
        self.scratch = 0
        self.live = self.peak = 0

    def _noise(self, value: int) -> int:
        if not self.unreliable:
            return value
        self.turn = (self.turn + 1) % len(self.garbage)
        return (value & self.reliable) | self.garbage[self.turn]

    def alloc(self) -> str:
        self.live += 1
        self.peak = max(self.peak, self.live)
        if self.free:
            return self.free.pop()
        self.scratch += 1
        return f"s{self.scratch}"

    def release(self, row: str) -> None:
        self.live -= 1
        self.free.append(row)

    def copy(self, src: str, dst: str) -> None:
        """RowCopy (ACT src, PRE, ACT dst): dst := src."""
        self.rows[dst] = self._noise(self.rows[src])
        self.ops += 1

    def maj(self, *names: str) -> None:
        """Simultaneous activation of 3 or 5 rows: every one of them becomes the bitwise majority."""
        vals = [self.rows[n] for n in names]
        if len(vals) == 3:
            a, b, c = vals
            m = (a & b) | (a & c) | (b & c)
        else:
            m = 0
            for i in range(5):  # at least three of five
                for j in range(i + 1, 5):
                    for l in range(j + 1, 5):
                        m |= vals[i] & vals[j] & vals[l]
        m = self._noise(m)
        for n in names:
            self.rows[n] = m
        self.ops += 1

    def full_adder(self, x: _Operand, y: _Operand, z: _Operand) -> tuple[_Operand, _Operand]:
        """(sum, carry) of three dual-track operands; 10 row ops + 2 per surviving input."""
        k, nk = self.alloc(), self.alloc()
        self.copy(x.true, "X0"), self.copy(y.true, "X1"), self.copy(z.true, k)
        self.maj("X0", "X1", k)  # carry
        self.copy(x.comp, "Y0"), self.copy(y.comp, "Y1"), self.copy(z.comp, nk)
        self.maj("Y0", "Y1", nk)  # ~carry
        rows = []
        for v in (x, y, z):
            if v.survives:
                t, c = self.alloc(), self.alloc()
                self.copy(v.true, t), self.copy(v.comp, c)
                rows.append((t, c))
            else:
                rows.append((v.true, v.comp))
        self.maj(*(r[0] for r in rows), "Y0", "Y1")  # sum = MAJ5(a, b, c, ~carry, ~carry)
        self.maj(*(r[1] for r in rows), "X0", "X1")  # ~sum = MAJ5(~a, ~b, ~c, carry, carry)
        for t, c in rows[1:]:
            self.release(t), self.release(c)
        return _Operand(rows[0][0], rows[0][1], False), _Operand(k, nk, False)


ZERO = _Operand("c0", "c1", True)


def emulate_segment(sub: Subarray, leaves: Sequence[Sequence[_Operand]]) -> list[_Operand | None]:
    """Reduce the rows entering each bit position to one row per position (carry-save, FIFO)."""
    results: list[_Operand | None] = []
    carries: list[_Operand] = []
    b = 0
    while b < len(leaves) or carries:
        queue = deque(list(leaves[b]) if b < len(leaves) else [])
        queue.extend(carries)
        carries = []
        while len(queue) >= 2:
            x, y = queue.popleft(), queue.popleft()
            z = queue.popleft() if queue else ZERO
            s, c = sub.full_adder(x, y, z)
            queue.append(s)
            carries.append(c)
        results.append(queue[0] if queue else None)
        b += 1
    return results


@dataclass(frozen=True)
class Emulation:
    partial: np.ndarray
    """D [G, n]."""
    task_ops: tuple[int, ...]
    rows_read: int
    peak_rows: int
    """Most rows a subarray used besides its weight rows (scratch + fixed compute + constants)."""


def _pack(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def _unpack(row: int, span: int) -> np.ndarray:
    raw = np.frombuffer(row.to_bytes((span + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:span].astype(bool)


def reliable_mask(columns: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Which physical columns compute reliably (a profiled module; seeded)."""
    return np.random.default_rng(seed).random(columns) < fraction


def emulate_gemv(codes: np.ndarray, w: WeightFields, geo: GemvGeometry, fraction: float, seed: int = 0) -> Emulation:
    """Run every subarray task of a GeMV command by command; D [G, n] read from reliable columns."""
    p, q = geo.p, w.q
    bits = activation_bits(codes, p)
    out = np.zeros((w.offset.shape[1], w.n), dtype=np.int64)
    task_ops, rows_read, peak = [], 0, 0
    start_m = 0
    chunk_ranges = []
    for width in geo.chunks:
        chunk_ranges.append((start_m, start_m + width))
        start_m += width
    segs = segments(geo)
    seg_index = 0
    for block in geo.blocks:
        block_segs = segs[seg_index:seg_index + len(block)]
        seg_index += len(block)
        for ci, (m0, m1) in enumerate(chunk_ranges):
            width = m1 - m0
            mask = reliable_mask(int(np.ceil(width / fraction)) + 64, fraction, seed + ci)
            cols = np.flatnonzero(mask)
            while cols.size < width:  # a short span: extend until it holds the chunk's outputs
                mask = np.concatenate([mask, reliable_mask(64, fraction, seed + ci + cols.size)])
                cols = np.flatnonzero(mask)
            cols = cols[:width]
            span = int(cols[-1]) + 1
            unreliable = sum(1 << int(c) for c in np.flatnonzero(~mask[:span]))
            sub = Subarray(span, unreliable, seed + 1000 * ci + seg_index)
            for a, b, _ in block_segs:  # the layout: row (j, i) holds bit i of u[m, j] at column cols[m]
                for j in range(a, b):
                    for i in range(q):
                        line = np.zeros(span, dtype=bool)
                        line[cols] = (w.u[m0:m1, j] >> i) & 1
                        sub.rows[f"w{j}.{i}"] = _pack(line)
                        sub.rows[f"~w{j}.{i}"] = _pack(~line)
            for a, b, g in block_segs:
                leaves: list[list[_Operand]] = [[] for _ in range(p + q - 1)]
                for k in range(p):
                    for j in range(a, b):
                        if bits[k, j]:
                            for i in range(q):
                                t, c = f"w{j}.{i}", f"~w{j}.{i}"
                                leaves[k + i].append(_Operand(c, t, True) if k == p - 1 else _Operand(t, c, True))
                results = emulate_segment(sub, leaves)
                value = np.zeros(width, dtype=np.int64)
                for pos, r in enumerate(results):
                    if r is None:
                        continue
                    rows_read += 1
                    value += _unpack(sub.rows[r.true], span)[cols].astype(np.int64) << pos
                negatives = int(bits[p - 1, a:b].sum())
                out[g, m0:m1] += value - negatives * (1 << (p - 1)) * ((1 << q) - 1)
                for r in results:  # the host has read the result rows: free the scratch
                    if r is not None and not r.survives and r.true.startswith("s"):
                        sub.release(r.true), sub.release(r.comp)
            task_ops.append(sub.ops)
            peak = max(peak, sub.peak + FIXED_ROWS)
    return Emulation(out, tuple(task_ops), rows_read, peak)


# --------------------------------------------------------------------------- interpreter


@dataclass(frozen=True)
class PlacedWeight:
    """What `pud.place` yields: the stored fields and the layout they are cut by."""

    fields: WeightFields
    layout: pud.LayoutAttr

    def geometry(self, p: int) -> GemvGeometry:
        lay, w = self.layout, self.fields
        blocks = tuple(tuple(b) for b in lay.blocks(w.k))
        used = max(sum(b) for b in blocks)
        return GemvGeometry(w.n, w.k, w.q, p, min(lay.value("group"), w.k), lay.value("inputs"), blocks,
                            tuple(lay.chunks(w.n)), 2 * w.q * used, lay.value("scratch"))


@dataclass
class CommandLog:
    """Commands the simulator executed, per `pud.gemv` call (actual activation bits)."""

    calls: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    """(device, row operations, result rows read, activation bits set, activation bits) per token row."""
    scheduled_ops: int = 0
    """Row operations the schedule priced for the same calls."""

    @property
    def ops(self) -> int:
        return sum(c[1] for c in self.calls)

    def stats(self) -> dict:
        bits = sum(c[4] for c in self.calls)
        return {
            "gemv_rows": len(self.calls),
            "row_ops": self.ops,
            "row_ops_scheduled": self.scheduled_ops,
            "result_rows_read": sum(c[2] for c in self.calls),
            "activation_bit_density": sum(c[3] for c in self.calls) / bits if bits else 0.0,
        }


LOG_KEY = "commands"
_FIELDS_KEY = "fields"


def command_log(interpreter: Interpreter) -> CommandLog:
    return interpreter.get_data(PudFunctions, LOG_KEY, CommandLog)


def encode(x: np.ndarray, aquant: llm.QuantAttr) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric codes [R, K] and scales [R] of `x` [..., K] (the `llm` reference's codes)."""
    k = x.shape[-1]
    qm = quantize_matrix(x.reshape(-1, k).astype(np.float32), aquant)
    return qm.signed_codes().astype(np.int32), qm.scale.reshape(-1).astype(np.float32)


def aggregate(partial: np.ndarray, codes: np.ndarray, scales: np.ndarray, w: WeightFields,
              bias: np.ndarray | None, shape: Sequence[int]) -> np.ndarray:
    """y = scales[r] * sum_g wscale[m, g] (mult D[r, g, m] - offset[m, g] A[r, g]) (+ bias)."""
    groups = np.arange(w.k) // w.qgroup
    sums = np.stack([codes[:, groups == g].sum(axis=1, dtype=np.int64) for g in range(w.offset.shape[1])], axis=1)
    dots = w.mult * partial - w.offset.T[None] * sums[:, :, None]  # [R, G, N] exact integers
    y = scales.astype(np.float64)[:, None] * np.einsum("rgn,ng->rn", dots.astype(np.float64), w.scale.astype(np.float64))
    if bias is not None:
        y = y + bias
    return y.astype(np.float32).reshape(shape)


@register_impls
class PudFunctions(InterpreterFunctions):
    """Simulator of the `pud` dialect: bit-plane GeMVs, commands counted from the actual bits."""

    @impl(pud.PlaceOp)
    def run_place(self, interpreter: Interpreter, op: pud.PlaceOp, args: tuple) -> tuple:
        cache = interpreter.get_data(PudFunctions, _FIELDS_KEY, dict)
        key = (id(args[0]), str(op.wquant))
        if key not in cache:
            cache[key] = (args[0], weight_fields(quantize_matrix(args[0], op.wquant), op.wquant))
        return (PlacedWeight(cache[key][1], op.layout),)

    @impl(pud.EncodeOp)
    def run_encode(self, interpreter: Interpreter, op: pud.EncodeOp, args: tuple) -> tuple:
        return encode(args[0], op.aquant)

    @impl(pud.GemvOp)
    def run_gemv(self, interpreter: Interpreter, op: pud.GemvOp, args: tuple) -> tuple:
        codes, placed = args
        geo = placed.geometry(op.act_bits.value.data)
        log = command_log(interpreter)
        rows = []
        p = geo.p
        log.scheduled_ops += op.row_ops.value.data
        for row in codes:
            partial, counts = gemv_bitplanes(row, placed.fields, geo)
            set_bits = int(activation_bits(row, p).sum())
            log.calls.append((op.device.data, counts.ops, counts.rows_read, set_bits, p * row.size))
            rows.append(partial)
        return (np.stack(rows) if rows else np.zeros(tuple(op.result.type.get_shape()), np.int64),)

    @staticmethod
    def run_stats(interpreter: Interpreter) -> dict:
        """For the run report: the commands the GeMVs executed from the actual activation bits."""
        log = command_log(interpreter)
        return {"pud": log.stats()} if log.calls else {}

    @impl(pud.AggregateOp)
    def run_aggregate(self, interpreter: Interpreter, op: pud.AggregateOp, args: tuple) -> tuple:
        partial, codes, scales, placed, *bias = args
        shape = tuple(op.result.type.get_shape())
        return (aggregate(partial, codes, scales, placed.fields, bias[0] if bias else None, shape),)


__all__ = [
    "CommandLog", "PlacedWeight", "PudFunctions", "aggregate", "command_log", "encode",
    "Emulation", "Subarray", "WeightFields", "activation_bits", "emulate_gemv", "fa_ops", "gemv_bitplanes",
    "selected_counts", "weight_fields",
]

"""The arithmetic of an MVDRAM GeMV in commodity DRAM: layout geometry, command counts, timing.

One source for the cost model (expected counts at an assumed activation bit density) and for the
simulator (counts from the actual activation bits); the command emulator in
`pimc.dialects.pud_semantics` executes exactly the sequences counted here.

Layout (horizontal bit-planes): the weight of output m and input j is stored as an unsigned q-bit
field u[m, j]; DRAM row (j, i) of a subarray holds bit i of u[m, j] for all outputs m of a column
chunk along the bitlines, and its complement row ~(j, i) beside it (dual track: no in-DRAM NOT).
A subarray holds `inputs` input indices of one chunk (2 q rows each) plus scratch rows.

GeMV (on-the-fly input encoding): the p-bit two's-complement activation codes a_j are never written
to DRAM. For each set bit k of a_j the host RowCopies the rows (j, i) into the accumulation at bit
position k + i (the sign bit k = p-1 selects the complement rows: -2^(p-1) u = 2^(p-1) ~u - 2^(p-1)
(2^q - 1), the constant corrected on the host); cleared bits cost nothing. The selected rows are
reduced down each bitline by MAJ-based full adders, column by column from the least significant
position (carry-save), until one row per position remains; the host reads those rows and adds
them with shifts (`reduce_column` / `accumulate`).

Full adder on dual-track rows (REFERENCE: carry = MAJ3(a,b,c), sum = MAJ5(a,b,c,~carry,~carry)):
    copy a, b, c -> X0, X1, K; MAJ3(X0, X1, K)             K = c'   (X0 = X1 = c')
    copy ~a, ~b, ~c -> Y0, Y1, ~K; MAJ3(Y0, Y1, ~K)        ~K = ~c' (Y0 = Y1 = ~c')
    MAJ5(a, b, c, Y0, Y1) -> s;  MAJ5(~a, ~b, ~c, X0, X1) -> ~s   (in the rows of a, b, c)
10 row operations; an input that must survive (a weight row, or a constant row padding a half
adder) is first copied into scratch: +2 each. MAJ is destructive, so every value read twice is
copied. SIMDRAM's 8n+1 per n-bit add assumes dual-contact NOT cells that commodity DDR4 lacks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from pimc.errors import TargetError

if TYPE_CHECKING:
    from pimc.targets.dram_pud.schema import PudDevice

ACTS_PER_OP = 2
"""ACT commands per row operation: RowCopy = ACT(src) PRE ACT(dst); MAJ = ACT PRE ACT (multi-row)."""
COMMANDS_PER_OP = 4
"""Commands per row operation: ACT, PRE, ACT, PRE."""
FIXED_ROWS = 6
"""Compute rows X0, X1, Y0, Y1 and the constant rows C0 (zeros), C1 (ones) of every subarray."""
FA_OPS = 10
"""Row operations of a full adder whose three inputs are scratch rows."""
COPY_OPS = 2
"""Row operations to copy a surviving input (and its complement) into scratch first."""


def fa_ops(surviving_inputs: int) -> int:
    return FA_OPS + COPY_OPS * surviving_inputs


def code_bits(weight_bits: float) -> int:
    """Stored field width q of a weight format: binary 1, ternary 2 (codes -1..1), intB B."""
    if weight_bits == 1:
        return 1
    if abs(weight_bits - 1.6) < 1e-9 or abs(weight_bits - 1.58) < 1e-9:
        return 2
    if weight_bits == int(weight_bits) and 2 <= weight_bits <= 8:
        return int(weight_bits)
    raise TargetError(f"dram_pud: weights of {weight_bits:g} bits cannot be laid out (1, 1.58, 2..8)")


# --------------------------------------------------------------------------- reduction


@dataclass(frozen=True)
class Column:
    """Reducing one bit position: `leaves` selected weight rows plus `carries` from below, FIFO."""

    ops: int
    adders: int
    carries: int
    """Carry rows produced for the next position (one per adder)."""
    result: str
    """What remains: "none" (bit is 0), "leaf" (a weight row, read directly) or "scratch"."""
    peak: int
    """Most scratch operands (row pairs) alive while reducing this column, counting its carries-in."""


@lru_cache(maxsize=65536)
def reduce_column(leaves: int, carries: int) -> Column:
    """Full adders take the three oldest entries (weight rows queue before carries, sums at the
    back) until one remains; two left become a half adder padded with the constant-0 row."""
    left, scratch = leaves, carries
    ops = adders = made = 0
    peak = scratch
    while left + scratch >= 2:
        take = 3 if left + scratch >= 3 else 2
        from_leaves = min(left, take)
        consts = 3 - take
        peak = max(peak, scratch + made + from_leaves + consts + 1)
        ops += fa_ops(from_leaves + consts)
        left -= from_leaves
        scratch -= take - from_leaves
        scratch += 1  # the sum stays in this column
        made += 1  # the carry goes up
        adders += 1
    result = "leaf" if left == 1 else ("scratch" if scratch == 1 else "none")
    return Column(ops, adders, made, result, peak)


@dataclass(frozen=True)
class Accumulation:
    """Commands of one in-DRAM reduction and what the host reads back."""

    ops: int
    adders: int
    result_rows: int
    """Rows the host reads (one per bit position that is not known to be 0)."""
    width: int
    """Bit positions of the result."""
    peak_rows: int
    """Scratch rows the reduction needs at its peak (both tracks, plus the fixed compute rows)."""


def leaves_per_position(selected: Sequence[int], q: int) -> list[int]:
    """Rows entering each bit position: `selected[k]` inputs have activation bit k set, each brings
    its q plane rows to positions k .. k+q-1."""
    out = [0] * (len(selected) + q - 1) if selected else []
    for k, n in enumerate(selected):
        for i in range(q):
            out[k + i] += n
    return out


def accumulate(leaves: Sequence[int]) -> Accumulation:
    """Count the commands of reducing `leaves[b]` rows at each position b (see `reduce_column`)."""
    carries = kept = ops = adders = peak = rows = 0
    b = 0
    while b < len(leaves) or carries:
        col = reduce_column(leaves[b] if b < len(leaves) else 0, carries)
        peak = max(peak, kept + col.peak)
        ops += col.ops
        adders += col.adders
        rows += col.result != "none"
        kept += col.result == "scratch"
        carries = col.carries
        b += 1
    return Accumulation(ops, adders, rows, b, 2 * peak + FIXED_ROWS)


# --------------------------------------------------------------------------- geometry


@lru_cache(maxsize=4096)
def scratch_rows(q: int, p: int, inputs: int) -> int:
    """Scratch rows to reserve: the peak of the worst case, every activation bit set."""
    return accumulate(leaves_per_position([inputs] * p, q)).peak_rows


def inputs_per_subarray(device: PudDevice, q: int, p: int, qgroup: int) -> int:
    """Most input indices per subarray: <= max_inputs, 2q weight rows each plus scratch, whole
    quantization groups when a group is smaller than that."""
    g = device.max_inputs_per_subarray
    while g > 0 and 2 * q * g + scratch_rows(q, p, g) > device.rows_per_subarray:
        g -= 1
    if g == 0:
        raise TargetError(
            f"device '{device.name}': rows_per_subarray = {device.rows_per_subarray} cannot hold one input "
            f"of {q}-bit weights with {p}-bit activations ({2 * q + scratch_rows(q, p, 1)} rows needed)"
        )
    if qgroup < g:
        g = g // qgroup * qgroup
    return g


def split_inputs(k: int, qgroup: int, per_block: int) -> list[list[int]]:
    """Blocks of <= per_block consecutive inputs; each block lists its quantization-group segments.
    Groups never straddle blocks when smaller than a block; larger groups are cut into blocks."""
    sizes = [qgroup] * (k // qgroup) + ([k % qgroup] if k % qgroup else [])
    blocks: list[list[int]] = []
    current: list[int] = []
    for size in sizes:
        while size > per_block:
            if current:
                blocks.append(current)
                current = []
            blocks.append([per_block])
            size -= per_block
        if sum(current) + size > per_block:
            blocks.append(current)
            current = []
        current.append(size)
    if current:
        blocks.append(current)
    return blocks


@dataclass(frozen=True)
class GemvGeometry:
    """How an N x K weight of q-bit codes is cut into subarray tasks (block of inputs x chunk of outputs)."""

    n: int
    k: int
    q: int
    p: int
    qgroup: int
    inputs: int
    """Input indices per subarray."""
    blocks: tuple[tuple[int, ...], ...]
    """Per block of inputs, the sizes of its quantization-group segments (each reduced separately)."""
    chunks: tuple[int, ...]
    """Outputs per chunk of reliable columns."""
    rows: int
    """Weight rows of one task (2 q per input, dual track)."""
    scratch: int
    """Scratch rows reserved per subarray."""

    @property
    def tasks(self) -> int:
        return len(self.blocks) * len(self.chunks)

    @property
    def segments(self) -> int:
        return sum(len(b) for b in self.blocks)

    @property
    def qgroups(self) -> int:
        return math.ceil(self.k / self.qgroup)


def gemv_geometry(device: PudDevice, n: int, k: int, q: int, p: int, qgroup: int) -> GemvGeometry:
    if min(n, k, q, p, qgroup) <= 0:
        raise TargetError(f"dram_pud: invalid GeMV {n}x{k} with q={q}, p={p}, group={qgroup}")
    qgroup = min(qgroup, k)
    cols = device.reliable_columns
    g = inputs_per_subarray(device, q, p, qgroup)
    blocks = tuple(tuple(b) for b in split_inputs(k, qgroup, g))
    chunks = tuple(min(cols, n - start) for start in range(0, n, cols))
    used = max(sum(b) for b in blocks)
    return GemvGeometry(n, k, q, p, qgroup, g, blocks, chunks, 2 * q * used, scratch_rows(q, p, used))


def expected_selected(segment: int, p: int, density: float) -> list[int]:
    """Inputs with activation bit k set in a segment, at a uniform bit density (estimate mode)."""
    return [round(density * segment)] * p


def segment_accumulation(selected: Sequence[int], q: int) -> Accumulation:
    return accumulate(leaves_per_position(selected, q))


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class DramTime:
    seconds: float
    bank_s: float
    """Bound by the busiest bank executing its row operations back to back."""
    faw_s: float
    """Bound by the four-activate window (and tRRD) of the busiest rank."""
    command_s: float
    """Bound by the host generating commands, one stream per module."""
    bus_s: float
    """Bound by the command bus of the busiest channel (one command per tCK)."""


def task_bank(device: PudDevice, slot: int) -> tuple[int, int]:
    """(rank, bank in rank) of global task slot `slot`: consecutive slots interleave ranks first."""
    return slot % device.ranks, (slot // device.ranks) % device.banks_per_rank


def dram_time(device: PudDevice, task_ops: Sequence[int], first_slot: int = 0) -> DramTime:
    """Time of running tasks (row operations each) placed on consecutive slots from `first_slot`."""
    bank_ops: dict[tuple[int, int], int] = defaultdict(int)
    rank_ops = [0] * device.ranks
    for t, ops in enumerate(task_ops):
        rank, bank = task_bank(device, first_slot + t)
        bank_ops[(rank, bank)] += ops
        rank_ops[rank] += ops
    tm = device.timing
    bank_s = max(bank_ops.values(), default=0) * device.op_s
    acts = max(rank_ops, default=0) * ACTS_PER_OP
    faw_s = max(acts * tm.tfaw_ns / 4, acts * tm.trrd_s_ns) * 1e-9
    module_ops = [sum(rank_ops[m * device.ranks_per_module:(m + 1) * device.ranks_per_module]) for m in range(device.modules)]
    command_s = max(module_ops, default=0) * COMMANDS_PER_OP * device.command_ns * 1e-9
    channel_ops = [sum(module_ops[m] for m in range(c, device.modules, device.channels)) for c in range(device.channels)]
    bus_s = max(channel_ops, default=0) * COMMANDS_PER_OP * tm.tck_ns * 1e-9
    return DramTime(max(bank_s, faw_s, command_s, bus_s), bank_s, faw_s, command_s, bus_s)

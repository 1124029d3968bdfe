"""Cost of a GeMV (or a GEMM as repeated GeMVs) on DRAM-PUD modules, from the commands it needs.

    latency = host encode + in-DRAM + host aggregate        (per token row, sequential)
    encode    : the host quantizes the activation to p-bit codes        (host CPU cost model)
    in-DRAM   : row operations per subarray task (`mechanism.accumulate`, expected counts at
                `act_bit_density`), placed round-robin over ranks and banks; the slowest of
                  busiest bank x (tRAS + tRP),  busiest rank x 2 ACT x max(tFAW / 4, tRRD_S),
                  busiest module x 4 commands x command_ns,  busiest channel x 4 commands x tCK
    aggregate : the host reads the result rows (their share of the row span: reliable columns
                are interleaved with unreliable ones) and shift-adds them, corrects the sign and
                zero-point terms and applies the scales                (host CPU cost model)
    energy    = (2 ACT per row op + 1 per row read) x chips x VDD x (IDD0 tRC - IDD3N tRAS - IDD2N tRP)
                + commands x command_energy + host energy (encode, aggregate)
                + host uncore_power_w x in-DRAM time (the host's cores wait while its memory
                  controller issues the commands; unset on the host: not charged)
    offchip   = bytes the host moves (activation in, result rows, scales, output); row operations
                move none.

DRAM background power is not charged, as the CPU model does not charge it either: it is paid
whichever device computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets.cost import Cost
from pimc.targets.dram_pud.mechanism import (
    ACTS_PER_OP,
    COMMANDS_PER_OP,
    DramTime,
    GemvGeometry,
    code_bits,
    dram_time,
    expected_selected,
    gemv_geometry,
    segment_accumulation,
)
from pimc.targets.dram_pud.schema import PudDevice

if TYPE_CHECKING:
    from pimc.targets.device import DeviceBase
    from pimc.targets.schema import Target

HOST_ENCODE_OPS_PER_INPUT = 5
"""absmax, scale, round, clip, narrow: per activation element."""
HOST_ADD_OPS_PER_BIT = 3
"""extract a result bit, shift it to its weight, add it: per output per result row."""
HOST_FINISH_OPS_PER_GROUP = 3
"""per output and quantization group: zero-point/offset correction, scale, accumulate."""


def supports(device: DeviceBase, work: Work) -> bool:
    """Linear layers with 1..8-bit integer weight codes and 2..8-bit integer activation codes."""
    if work.op != "llm.linear" or not {"rows", "n", "k"} <= work.dims.keys() or "ggml_block" in work.dims:
        return False
    if not (work.act_bits == int(work.act_bits) and 2 <= work.act_bits <= 8):
        return False
    try:
        code_bits(work.weight_bits)
    except TargetError:
        return False
    return True


def host_of(target: Target, device: PudDevice) -> DeviceBase:
    """The cpu device named by `device.host` (a TargetError names the field otherwise)."""
    names = {d.name: d for d in target.devices}
    host = names.get(device.host)
    if host is None or host.kind != "cpu":
        cpus = ", ".join(n for n, d in names.items() if d.kind == "cpu") or "none"
        raise TargetError(
            f"target '{target.name}': devices['{device.name}'].host: {device.host!r} is not a cpu device "
            f"of the target (cpu devices: {cpus})"
        )
    return host


def host_wait_power_w(host: DeviceBase) -> float:
    """What the host package draws while the modules compute: its uncore (the memory controller
    issues the commands, the cores wait), when the host gives `uncore_power_w`; else nothing."""
    return getattr(host, "uncore_power_w", None) or 0.0


@dataclass(frozen=True)
class GemvCounts:
    """Commands and read-out of one GeMV (one token row)."""

    task_ops: tuple[int, ...]
    """Row operations per subarray task, in task order (block-major, then chunk)."""
    rows_read: int
    read_bytes: int
    host_ops: float
    """Host arithmetic of the aggregation (excluding the per-output finish)."""

    @property
    def ops(self) -> int:
        return sum(self.task_ops)

    @property
    def commands(self) -> int:
        return self.ops * COMMANDS_PER_OP


def row_span_bytes(reliable_fraction: float, width: int) -> int:
    """Bytes the host reads to get `width` reliable columns of a row (interleaved with unreliable ones)."""
    return math.ceil(width / reliable_fraction / 8)


def gemv_counts(reliable_fraction: float, geo: GemvGeometry, selected: Sequence[Sequence[int]]) -> GemvCounts:
    """Counts for one GeMV; `selected[s][k]` = inputs of segment s (all blocks, in order) with
    activation bit k set (k = p-1: negative inputs, which select the complement rows)."""
    task_ops: list[int] = []
    rows_read = read_bytes = 0
    host_ops = 0.0
    s = 0
    for block in geo.blocks:
        accs = [segment_accumulation(selected[s + i], geo.q) for i in range(len(block))]
        s += len(block)
        block_ops = sum(a.ops for a in accs)
        block_rows = sum(a.result_rows for a in accs)
        for width in geo.chunks:
            task_ops.append(block_ops)
            rows_read += block_rows
            read_bytes += block_rows * row_span_bytes(reliable_fraction, width)
            host_ops += HOST_ADD_OPS_PER_BIT * block_rows * width
    return GemvCounts(tuple(task_ops), rows_read, read_bytes, host_ops)


def expected_counts(device: PudDevice, geo: GemvGeometry, density: float | None = None) -> GemvCounts:
    d = device.act_bit_density if density is None else density
    selected = [expected_selected(seg, geo.p, d) for block in geo.blocks for seg in block]
    return gemv_counts(device.reliable_fraction, geo, selected)


@dataclass(frozen=True)
class PudBreakdown:
    """A linear on a PUD device, phase by phase (each Cost covers all token rows)."""

    geometry: GemvGeometry
    counts: GemvCounts
    """Per token row."""
    time: DramTime
    """Per token row."""
    encode: Cost
    dram: Cost
    aggregate: Cost

    @property
    def total(self) -> Cost:
        return self.encode + self.dram + self.aggregate


def work_geometry(device: PudDevice, work: Work) -> GemvGeometry:
    d = work.dims
    return gemv_geometry(device, d["n"], d["k"], code_bits(work.weight_bits), int(work.act_bits), d.get("wgroup", d["k"]))


def host_works(geo: GemvGeometry, counts: GemvCounts, rows: int, zero_points: bool) -> tuple[Work, Work]:
    """What the host does around the in-DRAM part: encode the input, aggregate the result rows."""
    n, k = geo.n, geo.k
    encode = Work("pud.encode", rows * HOST_ENCODE_OPS_PER_INPUT * k, 32, 0.0, rows * 4.0 * k, rows * 1.0 * k)
    finish = n * geo.segments + HOST_FINISH_OPS_PER_GROUP * n * geo.qgroups + k
    scale_bytes = n * geo.qgroups * 2.0 * (2 if zero_points else 1)
    aggregate = Work(
        "pud.aggregate", rows * (counts.host_ops + finish), 32, scale_bytes,
        rows * float(counts.read_bytes) + rows * 1.0 * k, rows * 4.0 * n,
    )
    return encode, aggregate


def breakdown(target: Target, device: PudDevice, work: Work, counts: GemvCounts | None = None) -> PudBreakdown:
    """Phase costs of `work` on `device`; `counts` (per token row) defaults to the expected ones."""
    from pimc.targets.kinds import device_kind  # the registry imports this module

    if not supports(device, work):
        raise TargetError(f"device '{device.name}' ({device.kind}) cannot run {work.op} with "
                          f"{work.weight_bits:g}-bit weights and {work.act_bits:g}-bit activations")
    host = host_of(target, device)
    geo = work_geometry(device, work)
    counts = counts or expected_counts(device, geo)
    rows = work.dims["rows"]
    time = dram_time(device, counts.task_ops)
    enc_work, agg_work = host_works(geo, counts, rows, bool(work.dims.get("wzero", 0)))
    host_cost = device_kind(host.kind).cost
    host_memory = target.memory_of(host)
    encode = host_cost(host, host_memory, enc_work)
    aggregate = host_cost(host, host_memory, agg_work)
    acts = counts.ops * ACTS_PER_OP + counts.rows_read
    dram_energy = acts * device.act_energy_j + counts.commands * device.command_energy_pj * 1e-12
    dram_energy += host_wait_power_w(host) * time.seconds
    dram = Cost(rows * time.seconds, rows * dram_energy, 0.0)
    return PudBreakdown(geo, counts, time, encode, dram, aggregate)


def pud_cost(target: Target, device: PudDevice, work: Work) -> Cost:
    return breakdown(target, device, work).total


def needs_target(device: DeviceBase, memory: object, work: Work) -> Cost:
    raise TargetError(f"device '{device.name}' (dram_pud) is priced with its host: use pimc.targets.op_cost(target, ...)")

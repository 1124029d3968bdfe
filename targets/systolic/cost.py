"""Cycle and energy model of a TPU-like output-stationary systolic array with a vector unit.

GEMM [M, K] x [K, N] on an R x C output-stationary array (SCALE-Sim, Samajdar et al. ISPASS 2020):
each fold pins an R x C block of outputs in the PEs and streams K operand pairs through it,

    cycles = ceil(M / R) * ceil(N / C) * (2R + C + K - 2)      # fill skew + K MACs + drain

per pass; operands wider than the PE multiplier take ceil(bits / operand_bits) passes each.

- `llm.linear`: M = rows (tokens), N = outputs, K = inputs (one product per weight-scale group of
  integer codes, whose partial sums are scaled as they drain); the weights stream from the memory
  every call (weight_bytes off-chip), double-buffered through the SRAM, so
  latency = max(compute, weight bytes / bandwidth) + the memory's first-access latency.
- `llm.attention`: per KV head, QKᵀ is a GEMM with M = queries x (heads / kv_heads) (the query heads
  sharing a KV head stack as rows), N = keys, K = head_dim; PV has N = head_dim, K = keys. Q, K, V
  and the probabilities are operand_bits integers; softmax, scaling and (de)quantization run on the
  vector unit. When the keys outnumber the queries they come from the KV cache in memory
  (2 x keys x kv_heads x head_dim operand bytes off-chip, streamed under the compute).
- Everything else runs on the vector unit: max(flops / lanes, bytes / (lanes x 4 B)) cycles.
  Embedding rows and KV-cache appends (stored at operand_bits) go to memory.
A view (reshape, KV-cache read) moves nothing and costs nothing; every other op pays
op_overhead_cycles. Activations stay in the SRAM unless an op's inputs plus outputs exceed it (then they spill:
off-chip bytes and bandwidth time). Energy: MACs, SRAM bytes (operand re-reads per fold, 32-bit
partial sums out), vector ops, memory bytes, and static power over the latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pimc.dialects.work import Work
from pimc.targets.cost import Cost
from pimc.targets.systolic.schema import SystolicDevice

if TYPE_CHECKING:
    from pimc.targets.schema import Memory


@dataclass(frozen=True)
class Gemm:
    """One [M, K] x [K, N] product on the array, repeated `count` times and `passes` times each."""

    m: int
    n: int
    k: int
    count: int = 1
    passes: int = 1

    def folds(self, device: SystolicDevice) -> int:
        return -(-self.m // device.rows) * -(-self.n // device.cols)

    def cycles(self, device: SystolicDevice) -> int:
        per_fold = 2 * device.rows + device.cols + self.k - 2
        return self.count * self.passes * self.folds(device) * per_fold

    def macs(self) -> int:
        return self.count * self.passes * self.m * self.n * self.k

    def sram_bytes(self, device: SystolicDevice) -> float:
        """Operand bytes read from SRAM (A once per column fold, B once per row fold) + results written."""
        op_bytes = device.operand_bits / 8
        a = -(-self.n // device.cols) * self.m * self.k
        b = -(-self.m // device.rows) * self.k * self.n
        out = self.m * self.n * device.accumulator_bits / 8
        return self.count * self.passes * ((a + b) * op_bytes + out)


@dataclass(frozen=True)
class SystolicBreakdown:
    """Cycles and energy of one op on the array, per component."""

    array_cycles: int
    vector_cycles: int
    overhead_cycles: int
    memory_s: float
    mac_j: float
    sram_j: float
    vector_j: float
    offchip_j: float
    offchip_bytes: float
    static_power_w: float
    clock_hz: float
    memory_latency_s: float

    @property
    def compute_s(self) -> float:
        return (self.array_cycles + self.vector_cycles + self.overhead_cycles) / self.clock_hz

    @property
    def latency_s(self) -> float:
        first_access = self.memory_latency_s if self.offchip_bytes > 0 else 0.0
        return max(self.compute_s, self.memory_s) + first_access

    @property
    def static_j(self) -> float:
        return self.static_power_w * self.latency_s

    @property
    def energy_j(self) -> float:
        return self.mac_j + self.sram_j + self.vector_j + self.offchip_j + self.static_j


def passes(bits: float, device: SystolicDevice) -> int:
    return max(1, math.ceil(math.ceil(bits) / device.operand_bits))


def attention_gemms(device: SystolicDevice, dims: dict[str, int]) -> list[Gemm]:
    s, t, h, kv, d = (dims[k] for k in ("queries", "keys", "heads", "kv_heads", "head_dim"))
    m = s * (h // kv)
    return [Gemm(m, t, d, count=kv), Gemm(m, d, t, count=kv)]


def attention_vector_ops(dims: dict[str, int]) -> float:
    """Softmax (5 per score), scaling, and quantize/dequantize of Q, P and the output, and of K and V
    when they are fresh rows (a KV cache is stored quantized when appended)."""
    s, t, h, kv, d = (dims[k] for k in ("queries", "keys", "heads", "kv_heads", "head_dim"))
    fresh_kv = 2 * t * kv * d if t <= s else 0
    return 5.0 * s * h * t + 2.0 * (2 * s * h * d + fresh_kv + s * h * t)


def breakdown(device: SystolicDevice, memory: Memory, work: Work) -> SystolicBreakdown:
    gemms: list[Gemm] = []
    vector_ops = 0.0
    vector_bytes = 0.0
    offchip = 0.0
    if work.op == "llm.linear":
        d = work.dims
        p = passes(work.weight_bits, device) * passes(work.act_bits, device)
        group = min(d.get("wgroup", d["k"]), d["k"])  # integer codes: each scale group is its own product
        full, rest = divmod(d["k"], group)
        gemms = [Gemm(d["rows"], d["n"], group, count=full, passes=p)] + ([Gemm(d["rows"], d["n"], rest, passes=p)] if rest else [])
        offchip = work.weight_bytes
    elif work.op == "llm.attention":
        d = work.dims
        gemms = attention_gemms(device, d)
        vector_ops = attention_vector_ops(d)
        if d["keys"] > d["queries"]:  # keys beyond the queries' own rows: the KV cache in memory
            offchip = 2.0 * d["keys"] * d["kv_heads"] * d["head_dim"] * device.operand_bits / 8
    elif work.op == "llm.matmul":
        d = work.dims
        gemms = [Gemm(d["m"], d["n"], d["k"], count=d["batch"], passes=passes(work.compute_bits, device) ** 2)]
    else:
        vector_ops = work.flops
        vector_bytes = work.input_bytes + work.output_bytes
        if work.op == "llm.embedding":
            offchip = work.weight_bytes  # the selected table rows
        elif work.op == "llm.kv_cache_append":
            offchip = work.output_bytes * device.operand_bits / 32  # rows stored at operand precision
            vector_ops = 2.0 * work.output_bytes / 4  # quantize each new element (scale, round)
    io_bytes = work.input_bytes + work.output_bytes
    if work.op == "llm.attention":  # K and V stream from memory (above); the queries and result stay
        io_bytes = 2.0 * work.dims["queries"] * work.dims["heads"] * work.dims["head_dim"] * 4
    if io_bytes > device.sram_bytes:  # activations that do not fit the scratchpad spill to memory
        offchip += io_bytes
    array_cycles = sum(g.cycles(device) for g in gemms)
    vector_cycles = max(math.ceil(vector_ops / device.vector_lanes), math.ceil(vector_bytes / (4 * device.vector_lanes)))
    sram = sum(g.sram_bytes(device) for g in gemms) + vector_bytes
    return SystolicBreakdown(
        array_cycles=array_cycles,
        vector_cycles=vector_cycles,
        overhead_cycles=device.op_overhead_cycles if work.flops or work.total_bytes else 0,  # views are free
        memory_s=offchip / (memory.bandwidth_gb_per_s * 1e9),
        mac_j=sum(g.macs() for g in gemms) * device.mac_energy_pj * 1e-12,
        sram_j=sram * device.sram_energy_pj_per_byte * 1e-12,
        vector_j=vector_ops * device.vector_energy_pj_per_op * 1e-12,
        offchip_j=offchip * memory.energy_pj_per_byte * 1e-12,
        offchip_bytes=offchip,
        static_power_w=device.static_power_w,
        clock_hz=device.clock_hz,
        memory_latency_s=memory.latency_ns * 1e-9,
    )


def systolic_cost(device: SystolicDevice, memory: Memory, work: Work) -> Cost:
    """Latency, energy and off-chip bytes of `work` on the array and its vector unit."""
    b = breakdown(device, memory, work)
    return Cost(latency_s=b.latency_s, energy_j=b.energy_j, offchip_bytes=b.offchip_bytes)

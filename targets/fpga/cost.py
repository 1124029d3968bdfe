"""Cycle and DMA cost of one op on an FPGA accelerator (MEADOW-style, arXiv 2503.11663).

Every op is one or more *phases*; a phase has PE/unit cycles, unpack-unit cycles and off-chip bytes:

    bandwidth = min(offchip_gbps / 8, memory.bandwidth_gb_per_s)  bytes/s
    compute_s = cycles / clock;  dma_s = offchip_bytes / bandwidth;  unpack_s = unpack_cycles / clock
    body      = max(compute_s, dma_s, unpack_s)       with >= 2 DMA engines (double buffering:
                                                       the next tile loads while this one computes)
              = compute_s + max(dma_s, unpack_s)      with one DMA engine (no overlap)
    latency   = op_overhead_cycles / clock + offchip_latency (when bytes move) + body
    energy    = (macs·e_mac + vector_ops·e_vec + onchip_bytes·e_onchip + offchip_bytes·e_dram) · 1e-12
                + static_power · latency

GEMM on the parallel-MAC PEs, output-stationary: each PE owns one output and reduces `parallel_pe_macs`
products per cycle, so [M,K]·[K,N] takes ceil(M·N / PEs) · ceil(K / lanes) cycles.

Activations move off chip at `activation_bits` per element (W8A8: 8). A linear's weights move at their
storage size (codes + scales), or at their packed size when the weight-packing pass packed them.

Attention has two forms:
- GEMM form (the baseline): three phases that each fetch inputs from off-chip and store outputs back —
  scores = QKᵀ (H·S·T written), softmax (H·S·T read and written), PV (H·S·T read).
- TPHS (token-parallel, head-sequential; the `tphs` hint set by the TPHS pass): per head, QKᵀ on the
  parallel PEs (one query token per PE, sweeping the keys: ceil(S/PEs)·T·ceil(D/lanes) cycles), softmax
  in the softmax unit (2 passes: exp-LUT + sum, divide; the max is taken as scores stream in), SV on the
  broadcast PEs (one token's output row each); the three stages pipeline across heads, so
  cycles = H · max(stage) + (sum(stages) − max(stage)) + softmax latency. Only Q, K, V are read and the
  output written: scores and probabilities stay on chip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets.cost import Cost
from pimc.targets.fpga.schema import FpgaDevice

if TYPE_CHECKING:  # schema.py imports the kinds registry, which imports this module
    from pimc.targets.schema import Memory

SCORE_BYTES = 4
"""QKᵀ accumulators (int32) held on chip between the PEs and the softmax unit."""

PE_OPS = ("llm.linear", "llm.matmul", "llm.attention")
VECTOR_OPS = (
    "llm.embedding", "llm.rmsnorm", "llm.layernorm", "llm.rope", "llm.softmax", "llm.silu", "llm.gelu",
    "llm.relu", "llm.relu2", "llm.add", "llm.mul", "llm.kv_cache_read", "llm.kv_cache_append", "llm.argmax",
    "llm.reshape", "llm.transpose", "llm.concat", "llm.slice",
)


@dataclass(frozen=True)
class Phase:
    """One pass of an op over the accelerator: what it computes and what it moves."""

    name: str
    cycles: int
    """Cycles of the busiest compute unit (PEs, softmax or vector unit)."""
    offchip_bytes: float
    macs: float = 0.0
    vector_ops: float = 0.0
    onchip_bytes: float = 0.0
    unpack_cycles: int = 0


def gemm_cycles(device: FpgaDevice, m: int, n: int, k: int) -> int:
    """[m,k]·[k,n] output-stationary on the parallel-MAC PEs."""
    return math.ceil(m * n / device.parallel_pes) * math.ceil(k / device.parallel_pe_macs)


def bandwidth_bytes_per_s(device: FpgaDevice, memory: Memory) -> float:
    return min(device.offchip_gbps * 1e9 / 8, memory.bandwidth_gb_per_s * 1e9)


def phase_cost(device: FpgaDevice, memory: Memory, phase: Phase) -> Cost:
    f = device.clock_hz
    compute_s = phase.cycles / f
    dma_s = phase.offchip_bytes / bandwidth_bytes_per_s(device, memory)
    unpack_s = phase.unpack_cycles / f
    if device.dma_engines >= 2:
        body = max(compute_s, dma_s, unpack_s)
    else:
        body = compute_s + max(dma_s, unpack_s)
    fill = device.offchip_latency_ns * 1e-9 if phase.offchip_bytes > 0 else 0.0
    latency = device.op_overhead_cycles / f + fill + body
    dynamic_pj = (
        phase.macs * device.energy_pj_per_mac
        + phase.vector_ops * device.energy_pj_per_vector_op
        + phase.onchip_bytes * device.energy_pj_per_onchip_byte
        + phase.offchip_bytes * memory.energy_pj_per_byte
    )
    return Cost(latency, dynamic_pj * 1e-12 + device.static_power_w * latency, float(phase.offchip_bytes))


# --------------------------------------------------------------------------- phases per op


def _staged(offchip: float, extra_onchip: float = 0.0) -> float:
    """On-chip traffic: every off-chip byte is written into a buffer and read out once."""
    return 2 * offchip + extra_onchip


def linear_phase(device: FpgaDevice, work: Work) -> Phase:
    m, n, k = work.dims["rows"], work.dims["n"], work.dims["k"]
    a = device.act_bytes
    weight_bytes = work.hints.get("packed_weight_bytes", work.weight_bytes)
    ids = int(work.hints.get("pack_ids", 0))
    offchip = weight_bytes + m * k * a + m * n * a
    return Phase(
        "gemm", gemm_cycles(device, m, n, k), offchip, macs=m * n * k, vector_ops=m * n,
        onchip_bytes=_staged(offchip), unpack_cycles=math.ceil(ids / device.unpack_ids_per_cycle),
    )


def matmul_phase(device: FpgaDevice, work: Work) -> Phase:
    b, m, n, k = (work.dims[x] for x in ("batch", "m", "n", "k"))
    offchip = b * (m * k + k * n + m * n) * device.act_bytes
    return Phase("gemm", b * gemm_cycles(device, m, n, k), offchip, macs=b * m * n * k, onchip_bytes=_staged(offchip))


def _attention_dims(work: Work) -> tuple[int, int, int, int, int]:
    d = work.dims
    return d["queries"], d["keys"], d["heads"], d["kv_heads"], d["head_dim"]


def attention_gemm_phases(device: FpgaDevice, work: Work) -> list[Phase]:
    """The GEMM-based baseline: QKᵀ, softmax and PV each round-trip through off-chip memory."""
    s, t, h, kv, d = _attention_dims(work)
    a = device.act_bytes
    q_bytes, kv_bytes, hst = s * h * d * a, t * kv * d * a, h * s * t
    scores = Phase(
        "scores", gemm_cycles(device, h * s, t, d), q_bytes + kv_bytes + hst * a,
        macs=hst * d, vector_ops=hst, onchip_bytes=_staged(q_bytes + kv_bytes + hst * a),
    )
    softmax = Phase(
        "softmax", 2 * math.ceil(hst / device.softmax_lanes) + device.softmax_latency_cycles, 2 * hst * a,
        vector_ops=4 * hst, onchip_bytes=_staged(2 * hst * a),
    )
    pv = Phase(
        "pv", gemm_cycles(device, h * s, d, t), hst * a + kv_bytes + q_bytes,
        macs=hst * d, onchip_bytes=_staged(hst * a + kv_bytes + q_bytes),
    )
    return [scores, softmax, pv]


@dataclass(frozen=True)
class TphsStages:
    """Cycles of one head in each pipeline stage."""

    qk: int
    softmax: int
    sv: int

    def total(self, heads: int, latency: int) -> int:
        stages = (self.qk, self.softmax, self.sv)
        return heads * max(stages) + sum(stages) - max(stages) + latency


def tphs_stages(device: FpgaDevice, work: Work) -> TphsStages:
    s, t, _, _, d = _attention_dims(work)
    # Token-parallel: each parallel PE holds one query token and sweeps the T keys of the head.
    qk = math.ceil(s / device.parallel_pes) * t * math.ceil(d / device.parallel_pe_macs)
    softmax = 2 * math.ceil(s * t / device.softmax_lanes)
    if device.broadcast_pes:  # each broadcast PE accumulates one token's output row, p[s,t] x V[t, :]
        sv = math.ceil(s / device.broadcast_pes) * t * math.ceil(d / device.broadcast_pe_macs)
    else:  # no broadcast PEs: SV shares the parallel PEs after QKᵀ
        qk, sv = qk + gemm_cycles(device, s, d, t), 0
    return TphsStages(qk, softmax, sv)


def tphs_onchip_bytes(device: FpgaDevice, work: Work) -> int:
    """On-chip bytes TPHS needs. Query tokens go through a head in groups of one token per parallel PE
    (g = min(S, PEs)); double-buffered: the group's Q rows and its score (int32) and probability rows over
    all T keys, and the K_h, V_h of two heads (the next loads while this one computes); plus the group's
    output accumulators."""
    s, t, _, _, d = _attention_dims(work)
    a, g = device.act_bytes, min(s, device.parallel_pes)
    return math.ceil(2 * (g * d * a + g * t * (SCORE_BYTES + a)) + 2 * 2 * t * d * a + g * d * 4)


def attention_tphs_phase(device: FpgaDevice, work: Work) -> Phase:
    s, t, h, kv, d = _attention_dims(work)
    a = device.act_bytes
    offchip = 2 * s * h * d * a + 2 * t * kv * d * a
    hst = h * s * t
    cycles = tphs_stages(device, work).total(h, device.softmax_latency_cycles)
    return Phase(
        "tphs", cycles, offchip, macs=2 * hst * d, vector_ops=5 * hst,
        onchip_bytes=_staged(offchip, 2 * hst * (SCORE_BYTES + a)),
    )


def vector_phase(device: FpgaDevice, work: Work) -> Phase:
    """Norms, elementwise, gathers and copies: the vector unit, with f32 IR tensors moved as A8 codes."""
    offchip = work.total_bytes * device.activation_bits / 32
    return Phase(
        "vector", math.ceil(work.flops / device.vector_lanes), offchip, vector_ops=work.flops,
        onchip_bytes=_staged(offchip),
    )


def op_phases(device: FpgaDevice, work: Work) -> list[Phase]:
    """The phases `work` runs as on `device` (attention as TPHS when the `tphs` hint says so)."""
    if work.op == "llm.linear":
        return [linear_phase(device, work)]
    if work.op == "llm.matmul":
        return [matmul_phase(device, work)]
    if work.op == "llm.attention":
        if work.hints.get("tphs"):
            return [attention_tphs_phase(device, work)]
        return attention_gemm_phases(device, work)
    if work.op in VECTOR_OPS:
        return [vector_phase(device, work)]
    raise TargetError(f"fpga device '{device.name}': no cost model for {work.op}")


def fpga_cost(device: FpgaDevice, memory: Memory, work: Work) -> Cost:
    """Latency, energy and off-chip bytes of `work` on `device` reading from `memory`."""
    if work.flops < 0 or min(work.weight_bytes, work.input_bytes, work.output_bytes) < 0:
        raise ValueError(f"negative work for {work.op}: {work}")
    return sum((phase_cost(device, memory, p) for p in op_phases(device, work)), start=Cost(0.0, 0.0, 0.0))


def fpga_supports(device: FpgaDevice, work: Work) -> bool:
    """int8 PEs: a linear runs only with weights and inputs of at most `operand_bits` bits."""
    if work.op == "llm.linear":  # integer weight codes (a ggml block format is not)
        return "ggml_block" not in work.dims and work.weight_bits <= device.operand_bits and work.act_bits <= device.operand_bits
    return work.op in PE_OPS or work.op in VECTOR_OPS


@dataclass(frozen=True)
class GemmTiles:
    """The tile loop of a GEMM: rows x outputs per on-chip tile, products per PE-cycle, buffer bytes."""

    tile_m: int
    tile_n: int
    tile_k: int
    buffer_bytes: int


def gemm_tiles(device: FpgaDevice, m: int, n: int, k: int, weight_bits: float) -> GemmTiles:
    """Largest tiles whose double-buffered inputs (tile_m x K) and weights (tile_n x K) plus int32
    accumulators (tile_m x tile_n) fit on chip; at least one row of each (then possibly not fitting,
    which the `fpga.gemm` verifier reports)."""
    a, wb, cap = device.act_bytes, weight_bits / 8, device.onchip_bytes

    def need(tm: int, tn: int) -> int:
        return math.ceil(2 * (tm * k * a + tn * k * wb) + tm * tn * 4)

    tm = max(1, min(m, int(cap // (4 * k * a))))
    tn = max(1, min(n, int(cap // (4 * k * wb))))
    while need(tm, tn) > cap and (tm > 1 or tn > 1):
        tm, tn = (tm, max(1, tn // 2)) if tn >= tm else (max(1, tm // 2), tn)
    return GemmTiles(tm, tn, device.parallel_pe_macs, need(tm, tn))

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
  scores = QKᵀ (H·S·T written at `score_bits`), softmax (those read, H·S·T probabilities written at
  `activation_bits`), PV (the probabilities read).
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

from pimc.dialects.llm_work import ROPE_FLOPS
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
class Transfer:
    """One tensor moved by DMA between off-chip DRAM and an on-chip buffer (an `fpga.dma_in` /
    `fpga.dma_out` of the lowered program)."""

    what: str
    """Which operand or result: input, weight, bias, query, key, value, scores, probs, output ..."""
    nbytes: float
    tile_bytes: float
    """Bytes per buffer half: the stream moves tile after tile through a double buffer."""


@dataclass(frozen=True)
class Phase:
    """One pass of an op over the accelerator: what it computes and what its DMA moves."""

    name: str
    cycles: int
    """Cycles of the busiest compute unit (PEs, softmax or vector unit)."""
    loads: tuple[Transfer, ...] = ()
    stores: tuple[Transfer, ...] = ()
    macs: float = 0.0
    vector_ops: float = 0.0
    held_onchip_bytes: float = 0.0
    """On-chip traffic beyond staging the transfers: intermediates kept on chip (TPHS scores, Q)."""
    unpack_cycles: int = 0

    @property
    def offchip_bytes(self) -> float:
        return sum(t.nbytes for t in self.loads) + sum(t.nbytes for t in self.stores)

    @property
    def onchip_bytes(self) -> float:
        """On-chip traffic: every off-chip byte is written into a buffer and read out once, plus the
        intermediates held on chip."""
        return 2 * self.offchip_bytes + self.held_onchip_bytes


def _stream(device: FpgaDevice, what: str, nbytes: float) -> Transfer:
    """A streamed (untiled) transfer: `stream_tile_bytes` per buffer half, never more than an eighth of the
    buffers (up to three streams double-buffered at once)."""
    return Transfer(what, nbytes, min(nbytes, device.stream_tile_bytes, device.onchip_bytes // 8))


def gemm_cycles(device: FpgaDevice, m: int, n: int, k: int) -> int:
    """[m,k]·[k,n] output-stationary on the parallel-MAC PEs."""
    return math.ceil(m * n / device.parallel_pes) * math.ceil(k / device.parallel_pe_macs)


def bandwidth_bytes_per_s(device: FpgaDevice, memory: Memory) -> float:
    return min(device.offchip_gbps * 1e9 / 8, memory.bandwidth_gb_per_s * 1e9)


def dma_seconds(device: FpgaDevice, memory: Memory, nbytes: float) -> float:
    """Time of one transfer at the accelerator's off-chip bandwidth (its DMA op's duration)."""
    return nbytes / bandwidth_bytes_per_s(device, memory)


def phase_cost(device: FpgaDevice, memory: Memory, phase: Phase) -> Cost:
    """The phase's compute, its DMA transfers (one after another on the shared off-chip port) and its
    unpack work; with >= 2 DMA engines the transfers are double-buffered under the compute."""
    f = device.clock_hz
    compute_s = phase.cycles / f
    dma_s = dma_seconds(device, memory, phase.offchip_bytes)
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


def linear_phase(device: FpgaDevice, work: Work) -> Phase:
    m, n, k = work.dims["rows"], work.dims["n"], work.dims["k"]
    a = device.act_bytes
    weight_bytes = work.hints.get("packed_weight_bytes", work.weight_bytes)
    ids = int(work.hints.get("pack_ids", 0))
    tiles = gemm_tiles(device, m, n, k, work.weight_bits)
    loads = (
        Transfer("weight", weight_bytes, min(weight_bytes, tiles.tile_n * k * work.weight_bits / 8)),
        Transfer("input", m * k * a, tiles.tile_m * k * a),
    )
    stores = (Transfer("output", m * n * a, tiles.tile_m * tiles.tile_n * a),)
    return Phase(
        "gemm", gemm_cycles(device, m, n, k), loads, stores, macs=m * n * k, vector_ops=m * n,
        unpack_cycles=math.ceil(ids / device.unpack_ids_per_cycle),
    )


def matmul_phase(device: FpgaDevice, work: Work) -> Phase:
    b, m, n, k = (work.dims[x] for x in ("batch", "m", "n", "k"))
    a = device.act_bytes
    loads = (_stream(device, "lhs", b * m * k * a), _stream(device, "rhs", b * k * n * a))
    stores = (_stream(device, "output", b * m * n * a),)
    return Phase("gemm", b * gemm_cycles(device, m, n, k), loads, stores, macs=b * m * n * k)


def _attention_dims(work: Work) -> tuple[int, int, int, int, int]:
    d = work.dims
    return d["queries"], d["keys"], d["heads"], d["kv_heads"], d["head_dim"]


def attention_gemm_phases(device: FpgaDevice, work: Work) -> list[Phase]:
    """The GEMM-based baseline: QKᵀ, softmax and PV each round-trip through off-chip memory."""
    s, t, h, kv, d = _attention_dims(work)
    a, sb = device.act_bytes, device.score_bytes
    q_bytes, kv_bytes, hst = s * h * d * a, t * kv * d * a, h * s * t
    scores = Phase(
        "scores", gemm_cycles(device, h * s, t, d),
        (_stream(device, "query", q_bytes), _stream(device, "key", kv_bytes)), (_stream(device, "scores", hst * sb),),
        macs=hst * d, vector_ops=hst,
    )
    softmax = Phase(
        "softmax", 2 * math.ceil(hst / device.softmax_lanes) + device.softmax_latency_cycles,
        (_stream(device, "scores", hst * sb),), (_stream(device, "probs", hst * a),),
        vector_ops=4 * hst,
    )
    pv = Phase(
        "pv", gemm_cycles(device, h * s, d, t),
        (_stream(device, "probs", hst * a), _stream(device, "value", kv_bytes)), (_stream(device, "output", q_bytes),),
        macs=hst * d,
    )
    return [scores, softmax, pv]


@dataclass(frozen=True)
class TphsStages:
    """Cycles of one head in each pipeline stage (`q`: the fused Q projection, on the parallel PEs
    before QKᵀ; 0 when Q comes from off chip)."""

    qk: int
    softmax: int
    sv: int
    q: int = 0
    rope: int = 0
    """Rotary embedding of the fused Q on the vector unit (its own stage, between Q and QKᵀ)."""

    def total(self, heads: int, latency: int) -> int:
        stages = (self.q + self.qk, self.rope, self.softmax, self.sv)  # Q and QKᵀ share the parallel PEs
        return heads * max(stages) + sum(stages) - max(stages) + latency


def fused_q(work: Work) -> bool:
    """Whether `work` is the TPHS pipeline with its Q projection fused in: the `tphs` pass's
    `llm.fused` tphs_attention, marked with the hint `tphs_q` (its dims: the Q linear's and the attention's)."""
    return work.op == "llm.fused" and bool(work.hints.get("tphs_q")) and "rows" in work.dims and "heads" in work.dims


def tphs_stages(device: FpgaDevice, work: Work) -> TphsStages:
    s, t, _, _, d = _attention_dims(work)
    # Token-parallel: each parallel PE holds one query token and sweeps the T keys of the head.
    qk = math.ceil(s / device.parallel_pes) * t * math.ceil(d / device.parallel_pe_macs)
    softmax = 2 * math.ceil(s * t / device.softmax_lanes)
    if device.broadcast_pes:  # each broadcast PE accumulates one token's output row, p[s,t] x V[t, :]
        sv = math.ceil(s / device.broadcast_pes) * t * math.ceil(d / device.broadcast_pe_macs)
    else:  # no broadcast PEs: SV shares the parallel PEs after QKᵀ
        qk, sv = qk + gemm_cycles(device, s, d, t), 0
    # Fused Q projection, token-parallel too: each PE makes its token's D outputs of head h over K inputs.
    q = rope = 0
    if fused_q(work):
        q = math.ceil(s / device.parallel_pes) * d * math.ceil(work.dims["k"] / device.parallel_pe_macs)
        rope = math.ceil(ROPE_FLOPS * s * d / device.vector_lanes) if work.hints.get("tphs_q_rope") else 0
    return TphsStages(qk, softmax, sv, q, rope)


def tphs_onchip_bytes(device: FpgaDevice, work: Work) -> int:
    """On-chip bytes TPHS needs. Query tokens go through a head in groups of one token per parallel PE
    (g = min(S, PEs)); double-buffered: the group's Q rows and its score (int32) and probability rows over
    all T keys, and the K_h, V_h of two heads (the next loads while this one computes); plus the group's
    output accumulators. With the Q projection fused: the S x K input rows stay on chip for all heads
    and the head's D x K slice of the Q weight is double-buffered."""
    s, t, _, _, d = _attention_dims(work)
    a, g = device.act_bytes, min(s, device.parallel_pes)
    need = 2 * (g * d * a + g * t * (SCORE_BYTES + a)) + 2 * 2 * t * d * a + g * d * 4
    if fused_q(work):
        need += s * work.dims["k"] * a + 2 * d * work.dims["k"] * work.weight_bits / 8
    return math.ceil(need)


def attention_tphs_phase(device: FpgaDevice, work: Work) -> Phase:
    s, t, h, kv, d = _attention_dims(work)
    a, g = device.act_bytes, min(s, device.parallel_pes)
    hst = h * s * t
    cycles = tphs_stages(device, work).total(h, device.softmax_latency_cycles)
    kv_loads = (Transfer("key", t * kv * d * a, t * d * a), Transfer("value", t * kv * d * a, t * d * a))
    output = Transfer("output", s * h * d * a, g * d * a)
    if not fused_q(work):
        loads = (Transfer("query", s * h * d * a, g * d * a), *kv_loads)
        return Phase(
            "tphs", cycles, loads, (output,), macs=2 * hst * d, vector_ops=5 * hst,
            held_onchip_bytes=2 * hst * (SCORE_BYTES + a),
        )
    # Q = x · Wqᵀ inside the pipeline: x and Wq come in instead of Q; Q never leaves the chip.
    k = work.dims["k"]
    weight_bytes = work.hints.get("packed_weight_bytes", work.weight_bytes)
    loads = (
        Transfer("weight", weight_bytes, min(weight_bytes, d * k * work.weight_bits / 8)),
        Transfer("input", s * k * a, s * k * a),
        *kv_loads,
    )
    return Phase(
        "tphs", cycles, loads, (output,), macs=s * k * h * d + 2 * hst * d,
        vector_ops=5 * hst + s * h * d * (1 + (ROPE_FLOPS if work.hints.get("tphs_q_rope") else 0)),
        held_onchip_bytes=2 * hst * (SCORE_BYTES + a) + 2 * s * h * d * a,
        unpack_cycles=math.ceil(int(work.hints.get("pack_ids", 0)) / device.unpack_ids_per_cycle),
    )


def vector_phase(device: FpgaDevice, work: Work) -> Phase:
    """Norms, elementwise, gathers and copies: the vector unit, with f32 IR tensors moved as A8 codes."""
    scale = device.activation_bits / 32
    loads = tuple(_stream(device, what, n * scale) for what, n in (("weight", work.weight_bytes), ("input", work.input_bytes)) if n)
    stores = (_stream(device, "output", work.output_bytes * scale),) if work.output_bytes else ()
    return Phase("vector", math.ceil(work.flops / device.vector_lanes), loads, stores, vector_ops=work.flops)


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
    if fused_q(work):
        return [attention_tphs_phase(device, work)]
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
    return work.op in PE_OPS or work.op in VECTOR_OPS or fused_q(work)


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

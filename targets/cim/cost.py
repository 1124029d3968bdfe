"""Cost of a linear layer on resident crossbars, from the mechanism (see `tiling.py` for the layout).

Latency follows MNSIM 2.0's PE model (`Latency_Model/PE_latency.py`): an input row is processed in
`rounds` = DAC steps x column rounds (each ADC converts one of its columns per round), every
crossbar of the layer in parallel, and each round costs

    round_s   = cell_read_latency + adc_latency + digital_cycles_per_round / clock
    tree_s    = (column_rounds * ceil(log2(k_slices)) + 1) / clock   # adder tree over K slices, output register
    latency_s = rows * rounds * round_s + tree_s + op_overhead_cycles / clock   # rows (tokens) stream through

Energy per row: DAC (word lines driven per step), cell reads (every weight cell per step), ADC
(power x conversion time per conversion), digital shift-add (per conversion) and scale/accumulate
(per output per K slice), activation buffer bytes (input codes in, 32-bit outputs out); plus
static power over the latency. Weights never move: programming them is a separate one-time cost
(`program_cost`), amortised over the tokens a deployment generates. Activations larger than the
buffer spill to the device's memory (off-chip bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pimc.dialects.work import Work
from pimc.targets.cim.schema import CimDevice
from pimc.targets.cim.tiling import CrossbarTiling, supported, tile_linear
from pimc.targets.cost import Cost

if TYPE_CHECKING:
    from pimc.targets.schema import Memory


@dataclass(frozen=True)
class CimBreakdown:
    """Latency and energy of one linear on a crossbar device, per component (seconds, joules)."""

    read_s: float
    adc_s: float
    digital_s: float
    spill_s: float
    dac_j: float
    cell_j: float
    adc_j: float
    digital_j: float
    buffer_j: float
    static_j: float
    offchip_j: float
    offchip_bytes: float

    @property
    def analog_s(self) -> float:
        """Crossbar reads and ADC conversions (the DACs settle within the read)."""
        return self.read_s + self.adc_s

    @property
    def latency_s(self) -> float:
        return self.read_s + self.adc_s + self.digital_s + self.spill_s

    @property
    def energy_j(self) -> float:
        return self.dac_j + self.cell_j + self.adc_j + self.digital_j + self.buffer_j + self.static_j + self.offchip_j


def supports(device: CimDevice, work: Work) -> bool:
    """Crossbars run linear layers with integer weight codes (<= 8 bits) and 2..8-bit integer inputs."""
    return work.op == "llm.linear" and "wgroup" in work.dims and supported(work.weight_bits, work.act_bits)


def work_tiling(device: CimDevice, work: Work) -> CrossbarTiling:
    d = work.dims
    return tile_linear(device, d["k"], d["n"], work.weight_bits, work.act_bits, d["wgroup"], bool(d.get("wzero", 0)))


def breakdown(device: CimDevice, memory: Memory, work: Work) -> CimBreakdown:
    """Per-component latency and energy of `work` (an `llm.linear`) on `device`."""
    t = work_tiling(device, work)
    rows = work.dims["rows"]
    period_s = 1.0 / (device.clock_mhz * 1e6)
    rounds = rows * t.rounds
    tree_cycles = t.column_rounds * math.ceil(math.log2(t.k_slices)) + 1 + device.op_overhead_cycles
    read_s = rounds * device.cell_read_latency_ns * 1e-9
    adc_s = rounds * device.adc_latency_s
    digital_s = rounds * device.digital_cycles_per_round * period_s + tree_cycles * period_s
    io_bytes = work.input_bytes + work.output_bytes
    offchip = io_bytes if io_bytes > device.buffer_bytes else 0.0
    spill_s = offchip / (memory.bandwidth_gb_per_s * 1e9)
    latency_s = read_s + adc_s + digital_s + spill_s
    buffer_bytes = rows * (t.k * t.act_bits / 8 + t.n * 4)
    return CimBreakdown(
        read_s=read_s,
        adc_s=adc_s,
        digital_s=digital_s,
        spill_s=spill_s,
        dac_j=rows * t.dac_steps * t.k * t.n_slices * device.dac_energy_fj * 1e-15,
        cell_j=rows * t.dac_steps * t.cells * device.cell_read_energy_fj * 1e-15,
        adc_j=rows * t.conversions * device.adc_energy_j,
        digital_j=rows * (t.conversions + 2 * t.n * t.k_slices) * device.digital_energy_pj_per_op * 1e-12,
        buffer_j=buffer_bytes * device.buffer_energy_pj_per_byte * 1e-12,
        static_j=device.static_power_w * latency_s,
        offchip_j=offchip * memory.energy_pj_per_byte * 1e-12,
        offchip_bytes=offchip,
    )


def cim_cost(device: CimDevice, memory: Memory, work: Work) -> Cost:
    """Latency, energy and off-chip bytes of one linear on resident crossbars."""
    b = breakdown(device, memory, work)
    return Cost(latency_s=b.latency_s, energy_j=b.energy_j, offchip_bytes=b.offchip_bytes)


def program_cost(device: CimDevice, tiling: CrossbarTiling, memory: Memory | None = None) -> Cost:
    """Writing one layer's weights into its crossbars once: row by row, `program_parallel_crossbars`
    crossbars at a time; the weight codes are read once from `memory` (when given)."""
    waves = -(-tiling.crossbars // device.program_parallel_crossbars)
    latency_s = waves * tiling.slice_k * device.cell_write_latency_ns * 1e-9
    code_bytes = tiling.cells / 8  # one bit per cell state written (cell_bits per cell)
    code_bytes *= device.cell_bits
    energy_j = tiling.cells * device.cell_write_energy_pj * 1e-12 + device.static_power_w * latency_s
    offchip = code_bytes if memory is not None else 0.0
    if memory is not None:
        energy_j += offchip * memory.energy_pj_per_byte * 1e-12
    return Cost(latency_s=latency_s, energy_j=energy_j, offchip_bytes=offchip)

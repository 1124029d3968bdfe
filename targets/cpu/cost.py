"""Roofline cost of one op on a CPU.

    key       = "int8" if work.compute_bits <= 8 else "fp32"
    compute_s = flops / peak_ops_per_s(compute_bits)        # cores * freq * ops/cycle/core[key]
    memory_s  = total_bytes / (memory.bandwidth_gb_per_s * 1e9 * bandwidth_efficiency)
    latency_s = op_overhead_s + max(compute_s, memory_s)
    energy_j  = (flops * energy_pj_per_op[key] + total_bytes * memory.energy_pj_per_byte) * 1e-12
                + static_power_w * latency_s                           (per-op model)
              = busy_power_w * latency_s + total_bytes * memory.energy_pj_per_byte * 1e-12
                                                                       (package-power model)
    offchip_bytes = total_bytes

total_bytes counts a linear's integer-coded weight in the format the device's kernels read
(`weight_format`: the IR's codes, or llama.cpp's block format of that width; `weight_format.py`).

Caches are not modelled: every operand byte (weights, inputs, outputs) is counted as traffic to the
device's memory, once, at the bandwidth the cores sustain (peak x bandwidth_efficiency, a STREAM-like
measurement of the machine). That is right for decode GEMVs whose weights far exceed the caches,
pessimistic for small ops whose operands stay cache-resident, and optimistic where a kernel reaches
less than STREAM or peak compute. An op with no work (a reshape: a view of the same buffer) launches
no kernel and costs nothing; every other op pays op_overhead_s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pimc.dialects.work import Work
from pimc.targets.cost import Cost
from pimc.targets.cpu.schema import CpuDevice
from pimc.targets.cpu.weight_format import weight_bytes
from pimc.targets.device import width_key

if TYPE_CHECKING:  # schema.py imports the kinds registry, which imports this module
    from pimc.targets.schema import Memory


def cpu_cost(device: CpuDevice, memory: Memory, work: Work) -> Cost:
    """Latency, energy and off-chip bytes of `work` on `device` reading from `memory`."""
    if work.flops < 0 or work.total_bytes < 0 or min(
        work.weight_bytes, work.input_bytes, work.output_bytes
    ) < 0:
        raise ValueError(f"negative work for {work.op}: {work}")
    if work.flops == 0 and work.total_bytes == 0:
        return Cost(latency_s=0.0, energy_j=0.0, offchip_bytes=0.0)  # a view: no kernel runs
    key = width_key(work.compute_bits)
    total_bytes = weight_bytes(device, work) + work.input_bytes + work.output_bytes
    compute_s = work.flops / device.peak_ops_per_s(work.compute_bits)
    memory_s = total_bytes / device.sustained_bytes_per_s(memory.bandwidth_gb_per_s)
    latency_s = device.op_overhead_s + max(compute_s, memory_s)
    memory_pj = total_bytes * memory.energy_pj_per_byte
    if device.busy_power_w is not None:
        energy_j = memory_pj * 1e-12 + device.busy_power_w * latency_s
    else:
        dynamic_pj = work.flops * getattr(device.energy_pj_per_op, key) + memory_pj
        energy_j = dynamic_pj * 1e-12 + device.static_power_w * latency_s
    return Cost(latency_s=latency_s, energy_j=energy_j, offchip_bytes=float(total_bytes))

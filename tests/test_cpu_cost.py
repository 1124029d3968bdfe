"""CPU roofline: hand-computed latency and energy for a decode GEMV and a prefill GEMM per preset.

The hardware numbers are written out here on purpose (not read back from the preset), so a changed
preset number shows up as a failing test that must be updated deliberately.
"""

import pytest

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets import Cost, load_target, op_cost

K = N = 4096
GEMV = Work("llm.linear", flops=2 * K * N, compute_bits=32,
            weight_bytes=K * N * 4, input_bytes=K * 4, output_bytes=N * 4)
M = 128
GEMM = Work("llm.linear", flops=2 * M * K * N, compute_bits=32,
            weight_bytes=K * N * 4, input_bytes=M * K * 4, output_bytes=M * N * 4)

# preset -> (cores, GHz, fp32 ops/cycle/core, pJ/fp32 op, peak GB/s, sustained fraction, pJ/byte, static W, overhead s)
# The i7-9700K uses the package-power model: pJ/op None, "static W" = busy_power_w (95 W, its TDP).
HW = {
    "cpu-a76": (4, 2.4, 16, 26.0, 17.068, 1.0, 40.0, 2.5, 5e-6),
    "cpu-i7-9700k": (8, 3.6, 32, None, 38.4, 0.84, 160.0, 95.0, 3e-6),
}


def expected(preset: str, work: Work, bound: str) -> tuple[float, float]:
    cores, ghz, ops_cycle, pj_op, gbps, efficiency, pj_byte, static_w, overhead_s = HW[preset]
    total_bytes = work.weight_bytes + work.input_bytes + work.output_bytes
    compute_s = work.flops / (cores * ghz * 1e9 * ops_cycle)
    memory_s = total_bytes / (gbps * 1e9 * efficiency)
    assert (memory_s > compute_s) == (bound == "memory")
    latency = overhead_s + max(compute_s, memory_s)
    energy = (work.flops * (pj_op or 0.0) + total_bytes * pj_byte) * 1e-12 + static_w * latency
    return latency, energy


@pytest.mark.parametrize("preset", list(HW))
@pytest.mark.parametrize(("work", "bound"), [(GEMV, "memory"), (GEMM, "compute")])
def test_roofline(preset, work, bound):
    cost = op_cost(load_target(preset), "cpu", work)
    latency, energy = expected(preset, work, bound)
    assert cost.latency_s == pytest.approx(latency, rel=1e-9)
    assert cost.energy_j == pytest.approx(energy, rel=1e-9)
    assert cost.offchip_bytes == work.weight_bytes + work.input_bytes + work.output_bytes


def test_gemv_a76_literal():
    # 67,141,632 B / 17.068 GB/s = 3.93377 ms; + 5 us overhead
    cost = op_cost(load_target("cpu-a76"), "cpu", GEMV)
    assert cost.latency_s == pytest.approx(5e-6 + 67_141_632 / 17.068e9, rel=1e-9)
    assert cost.latency_s == pytest.approx(3.93877e-3, rel=1e-5)


def test_gemv_i7_literal():
    # 67,141,632 B at 38.4 GB/s x 0.84 = 32.256 GB/s sustained: 2.08153 ms; + 3 us overhead
    cost = op_cost(load_target("cpu-i7-9700k"), "cpu", GEMV)
    assert cost.latency_s == pytest.approx(2.08453e-3, rel=1e-5)
    # package power 95 W x 2.08453 ms = 198.030 mJ; + 67,141,632 B x 160 pJ = 10.743 mJ
    assert cost.energy_j == pytest.approx(208.773e-3, rel=1e-5)


def test_bandwidth_efficiency_must_be_a_fraction():
    with pytest.raises(TargetError, match=r"bandwidth_efficiency"):
        load_target("cpu-i7-9700k", ["cpu.bandwidth_efficiency=1.5"])


def test_int8_uses_int8_rate_and_energy():
    w8 = Work("llm.linear", flops=2 * M * K * N, compute_bits=8,
              weight_bytes=K * N, input_bytes=0, output_bytes=0)
    cost = op_cost(load_target("cpu-i7-9700k"), "cpu", w8)
    compute_s = w8.flops / (8 * 3.6e9 * 64)
    assert cost.latency_s == pytest.approx(3e-6 + compute_s, rel=1e-9)
    # package power: the same 95 W whatever the width or bound; memory energy per byte
    assert cost.energy_j == pytest.approx(K * N * 160.0 * 1e-12 + 95.0 * cost.latency_s, rel=1e-9)


def test_per_op_model_prices_ops_and_static_power():
    w8 = Work("llm.linear", flops=2 * M * K * N, compute_bits=8, weight_bytes=K * N, input_bytes=0, output_bytes=0)
    cost = op_cost(load_target("cpu-a76"), "cpu", w8)
    a76 = load_target("cpu-a76").device("cpu")
    assert cost.energy_j == pytest.approx(
        (w8.flops * a76.energy_pj_per_op.int8 + K * N * 40.0) * 1e-12 + 2.5 * cost.latency_s, rel=1e-9)


@pytest.mark.parametrize(("overrides", "message"), [
    (["cpu.busy_power_w=50"], "busy_power_w replaces energy_pj_per_op and static_power_w"),
    (["cpu.uncore_power_w=10"], None),
])
def test_energy_model_fields(overrides, message):
    # cpu-a76 has the per-op model: adding busy_power_w gives two models (an error); uncore alone is fine
    if message is None:
        assert load_target("cpu-a76", overrides).device("cpu").uncore_power_w == 10
    else:
        with pytest.raises(TargetError, match=message):
            load_target("cpu-a76", overrides)
    with pytest.raises(TargetError, match=r"uncore_power_w \(100.0\) exceeds busy_power_w \(95.0\)"):
        load_target("cpu-i7-9700k", ["cpu.uncore_power_w=100.0"])


def test_view_costs_nothing_but_any_work_pays_the_overhead():
    # a reshape moves no bytes (a view of the same buffer): no kernel, no dispatch
    view = op_cost(load_target("cpu-a76"), "cpu", Work("llm.reshape", 0, 32, 0, 0, 0))
    assert view == Cost(latency_s=0.0, energy_j=0.0, offchip_bytes=0.0)
    # one byte of work launches a kernel: 5 µs dispatch (cpu-a76 op_overhead_s) + 1 B at 17.068 GB/s
    tiny = op_cost(load_target("cpu-a76"), "cpu", Work("llm.add", 0, 32, 0, 1, 0))
    assert tiny.latency_s == pytest.approx(5e-6 + 1 / 17.068e9, rel=1e-12) and tiny.offchip_bytes == 1.0


def test_overrides_flow_into_cost():
    base = op_cost(load_target("cpu-a76"), "cpu", GEMM)
    half = op_cost(load_target("cpu-a76", ["cpu.cores=2"]), "cpu", GEMM)
    assert half.latency_s - 5e-6 == pytest.approx(2 * (base.latency_s - 5e-6), rel=1e-9)


def test_cost_adds():
    a, b = Cost(1.0, 2.0, 3.0), Cost(0.5, 0.25, 1.0)
    assert a + b == Cost(1.5, 2.25, 4.0)
    assert sum([a, b]) == a + b


def test_unknown_device():
    with pytest.raises(TargetError, match="no device 'npu'"):
        op_cost(load_target("cpu-a76"), "npu", GEMV)


def test_unknown_kind_is_a_clear_error():
    from pimc.targets import device_kind

    with pytest.raises(TargetError, match=r"unknown device kind 'gpu' \(known: (\w+, )*cpu(, \w+)*\)"):
        device_kind("gpu")

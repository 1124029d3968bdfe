"""Chrome/Perfetto traces: tracks and event counts are exactly what the schedule and the run imply."""

from __future__ import annotations

import json
from collections import Counter

from pathlib import Path

import pytest
from typer.testing import CliRunner

import pimc
from pimc.cli import app
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.targets import load_target
from pimc.timeline import Event
from pimc.trace import PIDS, build_trace, trace_json
from pimc.transfers import transfer_events

FIXTURES = Path(__file__).parent / "fixtures" / "targets"
SCRATCHPAD = FIXTURES / "cpu-scratchpad.toml"
TWO_MEM = FIXTURES / "two-mem-link.toml"


@pytest.fixture(scope="module")
def two_mem_program():
    """tiny-llama W8A8 on two-mem-link: the CPU and the NPU on their own memories, joined by `bus`
    (4 GB/s, 500 ns, 10 pJ/B): activations cross it."""
    return pimc.compile("tiny-llama", str(TWO_MEM), seq_len=8, context=32, wbits=8, abits=8)


def _names(trace, ph="M"):
    return [e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == ph]


def _slices(trace, process):
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == PIDS[process]]


def test_run_trace_has_a_slice_per_executed_op_and_memory_counters(tiny_program):
    result = tiny_program.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=3)  # prefill + 2 decode steps
    trace = json.loads(trace_json(tiny_program.trace(result)))
    devices = _slices(trace, "devices")
    assert len(devices) == len(result.events) > 0
    assert Counter(e["cat"] for e in devices) == Counter(e.phase for e in result.events)
    assert _names(trace) == ["devices", "links", "memories", "cpu"]  # one device, no links on cpu-a76
    # Slices are in microseconds and cover the run's latency.
    end_us = max(e["ts"] + e["dur"] for e in devices)
    assert abs(end_us - result.report.data["run"]["latency_s"] * 1e6) < 1e-6 * end_us
    # Memory counters: one counter track per memory; each call starts from and returns to zero bytes
    # held by activations, and the highest level equals the schedule's own peak occupancy.
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert {e["name"] for e in counters} == {m.name for m in tiny_program.target.memories}
    for phase in ("prefill", "decode"):
        schedule = Schedule.from_json(tiny_program.schedules[phase])
        points = sorted({t for r in schedule.residency for t in (r.start_s, r.end_s)})
        peak = max(sum(r.size_bytes for r in schedule.residency if r.start_s <= t < r.end_s) for t in points)
        assert peak > 0
        assert peak <= max(e["args"]["bytes"] for e in counters)
    assert counters[-1]["args"]["bytes"] == 0


def test_static_trace_is_one_prefill_then_one_decode(tiny_program):
    trace = tiny_program.trace()
    devices = _slices(trace, "devices")
    prefill = [e for e in devices if e["cat"] == "prefill"]
    decode = [e for e in devices if e["cat"] == "decode"]
    assert len(prefill) == len(tiny_program.schedules["prefill"]["slots"])
    assert len(decode) == len(tiny_program.schedules["decode"]["slots"])
    assert min(e["ts"] for e in decode) >= max(e["ts"] + e["dur"] for e in prefill) - 1e-9
    assert trace_json(trace) == trace_json(tiny_program.trace())  # byte-stable


def test_transfers_become_link_slices_with_link_bytes_and_energy():
    """cpu computes from scratchpad `spm`; `t` is spilled to `dram` over `dma` (40 pJ/B) and reloaded."""
    target = load_target(str(SCRATCHPAD))
    schedule = Schedule(
        slots={"a": OpSlot("a", "cpu", 0.0, 1e-6), "b": OpSlot("b", "cpu", 3e-6, 4e-6)},
        residency=(Residency("t", "spm", 0.0, 1.5e-6, 0, 64), Residency("t", "dram", 1e-6, 3e-6, 0, 64),
                   Residency("t", "spm", 2.5e-6, 4e-6, 0, 64)),
        transfers=(Transfer("t", "spm", "dram", 1e-6, 1.5e-6, 64), Transfer("t", "dram", "spm", 2.5e-6, 3e-6, 64)),
        solver="test", status="OPTIMAL", objective=4e-6, bound=4e-6, gap=0.0,
    )
    # two calls of the phase, the second 10 us later: each call's transfers placed where it began
    events = [Event("prefill", step, "cpu", op, 10e-6 * step + start, 10e-6 * step + start + 1e-6, 1e-9, 0)
              for step in range(2) for op, start in (("a", 0.0), ("b", 3e-6))]
    schedules = {"prefill": schedule}
    trace = build_trace(events, schedules, transfer_events(events, schedules, target))
    links = _slices(trace, "links")
    assert [(e["name"], e["cat"], e["ts"], e["dur"], e["args"]["step"], e["args"]["link"], e["args"]["bytes"])
            for e in links] == [("spill t", "spill", 1.0, 0.5, 0, "dma", 64), ("reload t", "reload", 2.5, 0.5, 0, "dma", 64),
                                ("spill t", "spill", 11.0, 0.5, 1, "dma", 64), ("reload t", "reload", 12.5, 0.5, 1, "dma", 64)]
    assert [e["args"]["energy_j"] for e in links] == pytest.approx([64 * 40e-12] * 4)  # bytes x the link's 40 pJ/B
    assert _names(trace) == ["devices", "links", "memories", "cpu", "dma: dram → spm", "dma: spm → dram"]
    spm = [(e["ts"], e["args"]["bytes"]) for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "spm"]
    assert spm == [(0.0, 64), (1.5, 0), (2.5, 64), (4.0, 0), (10.0, 64), (11.5, 0), (12.5, 64), (14.0, 0)]


def test_trace_link_slices_are_the_reports_transfers(two_mem_program):
    """On a target with links, the trace's link slices sum to the report's per-link bytes and energy."""
    links = _slices(two_mem_program.trace(), "links")
    usage = two_mem_program.report().data["links"]["bus"]
    assert links and len(links) == usage["transfers"]
    assert sum(e["args"]["bytes"] for e in links) == usage["bytes"]
    assert sum(e["args"]["energy_j"] for e in links) == pytest.approx(usage["energy_j"], rel=1e-12)
    assert {e["args"]["link"] for e in links} == {"bus"}


def test_link_slices_are_priced_from_the_links_numbers(two_mem_program):
    """Each slice on `bus` moves one whole f32 tensor (tokens x hidden 128, KV 64, FFN 344 or vocab
    512 wide, or int64 positions), lasts bytes / 4 GB/s + 500 ns and costs bytes x 10 pJ."""
    links = _slices(two_mem_program.trace(), "links")
    assert links
    for e in links:
        tokens = {"prefill": 8, "decode": 1}[e["args"]["phase"]]
        nbytes = e["args"]["bytes"]
        assert nbytes in {tokens * width * 4 for width in (128, 64, 344, 512)} | {tokens * 8}
        assert e["dur"] == pytest.approx(nbytes / 4e9 * 1e6 + 0.5, abs=1e-6)  # microseconds
        assert e["args"]["energy_j"] == pytest.approx(nbytes * 10e-12, rel=1e-12)
    priced = {(e["args"]["phase"], e["args"]["bytes"], e["dur"], e["args"]["energy_j"]) for e in links}
    # by hand: the prefill's hidden state, 8 x 128 x 4 B = 4096 B: 1.024 us + 0.5 us, 40.96 nJ;
    # its FFN activations, 8 x 344 x 4 B = 11008 B: 2.752 + 0.5 us, 110.08 nJ; decode's hidden row 512 B
    assert {("prefill", 4096, 1.524), ("prefill", 11008, 3.252), ("decode", 512, 0.628)} <= {p[:3] for p in priced}
    for phase, nbytes, energy_j in (("prefill", 4096, 40.96e-9), ("prefill", 11008, 110.08e-9), ("decode", 512, 5.12e-9)):
        assert all(j == pytest.approx(energy_j, rel=1e-12) for p, b, _, j in priced if (p, b) == (phase, nbytes))


def test_cli_report_and_run_write_traces(tmp_path, tiny_program):
    bundle = tiny_program.save(tmp_path / "bundle")
    runner = CliRunner()
    out = runner.invoke(app, ["report", str(bundle), "--trace", str(tmp_path / "static.json")])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["run", str(bundle), "--input-ids", "1,2,3,4,5,6,7,8", "--tokens", "2",
                              "--trace", str(tmp_path / "run.json"), "--json"])
    assert out.exit_code == 0, out.output
    static = json.loads((tmp_path / "static.json").read_text())
    run = json.loads((tmp_path / "run.json").read_text())
    assert static == json.loads(trace_json(tiny_program.trace()))
    assert len(_slices(run, "devices")) == len(_slices(static, "devices"))  # prefill + one decode step

"""Chrome/Perfetto traces: tracks and event counts are exactly what the schedule and the run imply."""

from __future__ import annotations

import json
from collections import Counter

from typer.testing import CliRunner

from pimc.cli import app
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.timeline import Event
from pimc.trace import PIDS, build_trace, trace_json


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


def test_transfers_become_link_slices_named_spill_and_reload():
    schedule = Schedule(
        slots={"a": OpSlot("a", "npu", 0.0, 1e-6), "b": OpSlot("b", "npu", 3e-6, 4e-6)},
        residency=(Residency("t", "sram", 0.0, 1.5e-6, 0, 64), Residency("t", "dram", 1e-6, 3e-6, 0, 64),
                   Residency("t", "sram", 2.5e-6, 4e-6, 0, 64)),
        transfers=(Transfer("t", "sram", "dram", 1e-6, 1.5e-6, 64), Transfer("t", "dram", "sram", 2.5e-6, 3e-6, 64)),
        solver="test", status="OPTIMAL", objective=4e-6, bound=4e-6, gap=0.0,
    )
    events = [Event("prefill", 0, "npu", "a", 0.0, 1e-6, 1e-9, 0), Event("prefill", 0, "npu", "b", 3e-6, 4e-6, 1e-9, 0)]
    trace = build_trace(events, {"prefill": schedule}, {"sram": "sram", "dram": "dram"})
    links = _slices(trace, "links")
    assert [(e["name"], e["cat"], e["ts"], e["dur"], e["args"]["bytes"]) for e in links] == [
        ("spill t", "spill", 1.0, 0.5, 64), ("reload t", "reload", 2.5, 0.5, 64)]
    assert _names(trace) == ["devices", "links", "memories", "npu", "dram → sram", "sram → dram"]
    sram = [(e["ts"], e["args"]["bytes"]) for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "sram"]
    assert sram == [(0.0, 64), (1.5, 0), (2.5, 64), (4.0, 0)]


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

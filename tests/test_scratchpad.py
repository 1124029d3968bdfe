"""A real compile that spills: tiny-llama on a CPU computing from a small scratchpad backed by LPDDR.

The mapper gets the scratchpad's backing memory from the target's link (`scratchpads`), weights and
inputs start in LPDDR and are loaded when read, and activations that do not fit are spilled and
reloaded. The trace and the memory plot show exactly the transfers the checked schedules imply.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import pimc
from pimc.mapping.from_ir import scratchpads
from pimc.mapping.schedule import Schedule
from pimc.targets import load_target
from pimc.transfers import transfer_events, transfer_roles

TARGET = Path(__file__).parent / "fixtures" / "targets" / "cpu-scratchpad.toml"
SEQ, CONTEXT, TOKENS = 56, 64, 3  # a run: prefill + 2 decode steps
IDS = [(7 * i) % 500 + 1 for i in range(SEQ)]


@pytest.fixture(scope="module")
def program():
    return pimc.compile("tiny-llama", str(TARGET), seq_len=SEQ, context=CONTEXT, wbits=8, abits=8)


@pytest.fixture(scope="module")
def run(program):
    return program.run(IDS, tokens=TOKENS)


def _roles(program) -> dict[str, Counter]:
    """Per phase, how many transfers of each role its checked schedule holds."""
    return {phase: Counter(transfer_roles(Schedule.from_json(s), {"dram"})) for phase, s in program.schedules.items()}


def _expected_roles(program) -> Counter:
    """How many transfers of each role the run makes: the prefill's once, the decode's per step."""
    roles = _roles(program)
    return roles["prefill"] + Counter({k: v * (TOKENS - 1) for k, v in roles["decode"].items()})


def test_the_scratchpad_is_backed_by_the_linked_lpddr():
    assert scratchpads(load_target(str(TARGET))) == {"spm": "dram"}
    assert scratchpads(load_target("cpu-a76")) == {}


def test_prefill_spills_and_reloads_activations(program):
    prefill = program.schedules["prefill"]
    roles = transfer_roles(Schedule.from_json(prefill), {"dram"})
    spills = [t for t, r in zip(prefill["transfers"], roles) if r == "spill"]
    reloads = [t for t, r in zip(prefill["transfers"], roles) if r == "reload"]
    loads = [t for t, r in zip(prefill["transfers"], roles) if r == "load"]
    assert spills and reloads
    assert {t["tensor"] for t in reloads} == {t["tensor"] for t in spills}
    for t in spills:  # an activation written on chip, sent to LPDDR, read back later
        assert t["tensor"].startswith("t") and (t["src_memory"], t["dst_memory"]) == ("spm", "dram")
        back = [r for r in reloads if r["tensor"] == t["tensor"]]
        assert back and min(r["start_s"] for r in back) >= t["end_s"] and back[0]["bytes"] == t["bytes"]
    # every weight the CPU reads is loaded from LPDDR at least once; the scratchpad never exceeds 330 kB
    weights = {t["tensor"] for t in loads if t["tensor"].startswith("w:")}
    assert len(weights) == 21  # embedding + 2 x (q, k, v, o, gate, up, down, 2 norms) + final norm + lm_head
    peak = _peak(prefill["residency"], "spm")
    assert 512 * 128 * 4 <= peak <= 330000  # at least the f32 embedding table [512, 128]


def _peak(residency, memory: str) -> int:
    deltas = sorted((d for r in residency if r["memory"] == memory
                     for d in ((r["start_s"], r["size_bytes"]), (r["end_s"], -r["size_bytes"]))), key=lambda d: (d[0], d[1]))
    level = peak = 0
    for _, delta in deltas:
        level += delta
        peak = max(peak, level)
    return peak


def test_outputs_equal_the_cpu_without_scratchpad(program, run):
    """Spilling moves bytes, never values: the same logits as tiny-llama on cpu-a76."""
    plain = pimc.compile("tiny-llama", "cpu-a76", seq_len=SEQ, context=CONTEXT, wbits=8, abits=8).run(IDS, tokens=TOKENS)
    assert run.tokens == plain.tokens
    np.testing.assert_array_equal(run.logits, plain.logits)


def test_trace_has_the_transfers_the_schedules_imply(program, run):
    expected = _expected_roles(program)
    trace = program.trace(run)
    links = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e["pid"] == 2]
    assert Counter(e["cat"] for e in links) == expected
    assert expected["spill"] > 0 and expected["reload"] == expected["spill"]
    assert all(e["name"] == f"{e['cat']} {e['name'].split(' ', 1)[1]}" for e in links)
    spm = [e["args"]["bytes"] for e in trace["traceEvents"] if e.get("ph") == "C" and e["name"] == "spm"]
    assert max(spm) <= 330000


def test_the_run_prices_its_transfers_once_for_report_trace_and_plots(program, run, monkeypatch, tmp_path):
    """`run` places the transfers of the calls it made; the trace and the plots of that run draw
    that same list instead of placing them again."""
    placed = transfer_events(run.events, program._schedules(), program.target)
    assert run.transfers == tuple(placed) and len(placed) == sum(_expected_roles(program).values())
    assert run.report.data["run"]["energy_j"] == pytest.approx(
        sum(e.energy_j for e in run.events) + sum(t.energy_j for t in placed), rel=1e-12)

    def place_again(*args):
        raise AssertionError("transfers placed again")

    monkeypatch.setattr(pimc.api, "transfer_events", place_again)
    links = [e for e in program.trace(run)["traceEvents"] if e.get("ph") == "X" and e["pid"] == 2]
    assert [(e["args"]["bytes"], e["args"]["energy_j"]) for e in links] == [(t.bytes, t.energy_j) for t in placed]
    assert {p.name for p in program.plots(tmp_path, run)} == {"gantt.png", "memory.png", "energy.png", "roofline-cpu.png"}


def test_memory_plot_counts_each_role(program, run):
    from pimc.plots import PlotData
    from pimc.plots.memory import plot

    expected = _expected_roles(program)
    data = PlotData("t", run.events, program._schedules(), program.target, run.transfers, program.manifest["placement"], run=True)
    fig = plot(data)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for role in ("load", "spill", "reload", "writeback"):
        assert f"{role} ({expected[role]})" in labels
    assert "capacity" in labels


def test_latency_counts_the_loads_before_the_first_op(program, run):
    """The prefill's first op waits for the embedding table to arrive: TTFT is the whole schedule."""
    report = program.report().data
    for phase in ("prefill", "decode"):
        schedule = program.schedules[phase]
        first_op = min(s["start_s"] for s in schedule["slots"])
        assert first_op > 0  # a load ran before it
        assert report[phase]["latency_s"] == pytest.approx(schedule["makespan_s"], rel=1e-12)
    assert report["ttft_s"] == report["prefill"]["latency_s"]
    last = max([e.end_s for e in run.events] + [t.end_s for t in run.transfers])
    assert run.report.data["run"]["latency_s"] == pytest.approx(last)

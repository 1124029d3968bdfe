"""Energy of transfers over links: in the report's phase totals, J/token, the run, a row per link,
the Markdown and the energy plot, priced as bytes x the link's pJ/byte."""

from __future__ import annotations

from pathlib import Path

import pytest

import pimc
from pimc.mapping.from_ir import link_costs
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.report import PhaseStats
from pimc.targets import load_target
from pimc.timeline import Event, phase_events
from pimc.transfers import link_usage, transfer_events

TWO_MEM = Path(__file__).parent / "fixtures" / "targets" / "two-mem-link.toml"
LINK_J_PER_BYTE = 10e-12  # the fixture's `bus`: 10 pJ/B
F32 = 4
HIDDEN, KV, FFN, VOCAB = 128, 64, 344, 512  # tiny-llama (KV: 2 kv heads x head dim 32)
I64 = 8


@pytest.fixture(scope="module")
def program():
    """tiny-llama W8A8 on a CPU and a systolic array with separate memories: activations cross `bus`."""
    return pimc.compile("tiny-llama", str(TWO_MEM), seq_len=8, context=32, wbits=8, abits=8)


def _two_transfer_schedule() -> Schedule:
    return Schedule(
        slots={"op0": OpSlot("op0", "cpu", 0.0, 1e-6), "op1": OpSlot("op1", "npu", 2e-6, 3e-6)},
        residency=(Residency("t0", "lpddr", 0.0, 2e-6, None, 4096), Residency("t0", "npu_mem", 1e-6, 3e-6, None, 4096)),
        transfers=(Transfer("t0", "lpddr", "npu_mem", 1e-6, 2e-6, 4096), Transfer("t1", "npu_mem", "lpddr", 3e-6, 4e-6, 1024)),
        solver="test", status="FEASIBLE", objective=4e-6, bound=None, gap=None,
    )


def test_transfers_are_priced_per_byte_and_placed_per_call():
    target = load_target(str(TWO_MEM))
    events = [Event("decode", step, "cpu", "llm.linear", 10e-6 * step, 10e-6 * step + 1e-6, 2e-6, 0.0, 0)
              for step in range(2)]
    transfers = transfer_events(events, {"decode": _two_transfer_schedule()}, target)
    assert [(t.step, t.link, t.bytes, round(t.start_s * 1e6, 9)) for t in transfers] == [
        (0, "bus", 4096, 1.0), (0, "bus", 1024, 3.0), (1, "bus", 4096, 11.0), (1, "bus", 1024, 13.0)]
    assert [t.energy_j for t in transfers] == pytest.approx([40.96e-9, 10.24e-9] * 2)  # 4096 B and 1024 B x 10 pJ/B
    usage = link_usage(transfers, target)
    assert usage == {"bus": {"endpoints": ["lpddr", "npu_mem"], "transfers": 4, "bytes": 10240,
                             "busy_s": pytest.approx(4e-6), "energy_j": pytest.approx(102.4e-9)}}
    one_call = PhaseStats.of(events[:1], transfers[:2])
    assert one_call.energy_j == pytest.approx(2e-6 + 51.2e-9)


def test_link_energy_is_in_phase_totals_and_j_per_token(program):
    report = program.report().data
    schedules = {name: Schedule.from_json(s) for name, s in program.schedules.items()}
    for phase, tokens in (("prefill", 8), ("decode", 1)):
        moved = [t["bytes"] for t in program.schedules[phase]["transfers"]]
        # every transfer moves one whole tensor: f32 rows of the hidden, K/V, FFN or vocab width, or int64 positions
        sizes = {tokens * width * F32 for width in (HIDDEN, KV, FFN, VOCAB)} | {tokens * I64}
        assert moved and set(moved) <= sizes
        ops_j = sum(e.energy_j for e in phase_events(program.module, phase))
        assert report[phase]["energy_j"] == pytest.approx(ops_j + sum(moved) * LINK_J_PER_BYTE, rel=1e-12)
        assert sum(moved) * LINK_J_PER_BYTE > 0
        # the mapper priced the same figure: its link costs and the report agree
        links = link_costs(program.target)
        problem_link_j = sum(links[(t.src_memory, t.dst_memory)].energy_j(t.bytes) for t in schedules[phase].transfers)
        assert problem_link_j == pytest.approx(sum(moved) * LINK_J_PER_BYTE)
    assert report["joules_per_token"] == report["decode"]["energy_j"]
    bus = report["links"]["bus"]
    total = sum(t["bytes"] for s in program.schedules.values() for t in s["transfers"])
    assert (bus["bytes"], bus["transfers"]) == (total, sum(len(s["transfers"]) for s in program.schedules.values()))
    assert bus["energy_j"] == pytest.approx(total * LINK_J_PER_BYTE)
    devices_j = sum(u["energy_j"] for u in report["devices"].values())
    assert devices_j + bus["energy_j"] == pytest.approx(report["prefill"]["energy_j"] + report["decode"]["energy_j"])
    markdown = program.report().to_markdown()
    assert "## Devices and links" in markdown
    assert f"| bus | link lpddr ↔ npu_mem |" in markdown and f"{bus['transfers']} transfers |" in markdown


def test_a_run_counts_the_link_once_per_call(program):
    result = program.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=4)  # prefill + 3 decode steps
    report = result.report.data
    prefill_b = sum(t["bytes"] for t in program.schedules["prefill"]["transfers"])
    decode_b = sum(t["bytes"] for t in program.schedules["decode"]["transfers"])
    assert report["links"]["bus"]["bytes"] == prefill_b + 3 * decode_b
    link_j = (prefill_b + 3 * decode_b) * LINK_J_PER_BYTE
    assert report["links"]["bus"]["energy_j"] == pytest.approx(link_j)
    assert report["run"]["energy_j"] == pytest.approx(sum(e.energy_j for e in result.events) + link_j)


def test_targets_without_links_report_none(tiny_program):
    report = tiny_program.report().data
    assert report["links"] == {}
    assert "## Devices (" in tiny_program.report().to_markdown()


def test_energy_plot_has_a_bar_per_link(program):
    from pimc.plots import PlotData
    from pimc.plots.energy import plot
    from pimc.plots.style import KindColors

    events, transfers = program._static_timeline
    data = PlotData("t", tuple(events), program._schedules(), program.target, tuple(transfers), program.manifest["placement"])
    fig = plot(data, KindColors((data.kind_of(e), e.end_s - e.start_s) for e in events))
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["cpu", "npu", "bus\n(link)"]
        texts = [t.get_text() for t in ax.texts]
        assert len(texts) == 3 and "idle" not in texts[2]

"""PNG plots (`--plots DIR`), the roofline ceilings they draw, and `--report F` (.md / .json).

Every plot is read back as an image of its fixed size; the numbers the plots are drawn from
(occupancy steps, transfer kinds, call spans, peak rates) are checked against hand-computed values.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

import pimc
from pimc.api import estimate_program
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.plots import SIZES, PlotData, render_plots
from pimc.plots.gantt import call_spans
from pimc.plots.memory import _steps
from pimc.targets import Target, load_target
from pimc.targets.kinds import device_kind
from pimc.timeline import Event
from pimc.transfers import transfer_events, transfer_roles
from test_cli import IDS, assert_ok, assert_user_error, pimc_inprocess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_pngs(directory, expected: set[str]) -> None:
    assert {p.name for p in directory.iterdir()} == expected
    for path in directory.iterdir():
        assert path.read_bytes().startswith(PNG_MAGIC)
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            kind = "roofline" if path.name.startswith("roofline-") else path.stem
            assert image.size == SIZES[kind], path.name
            assert image.mode == "RGBA"


@pytest.fixture(scope="module")
def bundle(tiny_program, tmp_path_factory):
    """tiny-llama compiled for cpu-a76 (seq 8, context 32), saved."""
    return tiny_program.save(tmp_path_factory.mktemp("plots") / "tiny")


@pytest.fixture(scope="module")
def soc_program():
    """tiny-llama on the heterogeneous edge SoC: ops on the CPU, the FPGA and the crossbars (W4A8)."""
    return estimate_program("tiny-llama", "edge-soc", seq_len=8, context=32, wbits=4, abits=8)


def test_every_plot_is_a_png_of_its_size(soc_program, tmp_path):
    paths = soc_program.plots(tmp_path / "plots")
    assert [p.name for p in paths] == ["gantt.png", "memory.png", "energy.png", "roofline-cpu.png", "roofline-fpga.png",
                                      "roofline-xbar.png"]
    _check_pngs(tmp_path / "plots", {p.name for p in paths})


def test_plots_are_byte_stable(soc_program, tmp_path):
    first = {p.name: p.read_bytes() for p in soc_program.plots(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in soc_program.plots(tmp_path / "b")}
    assert first == second
    assert all(b"Software" not in png and b"Matplotlib" not in png for png in first.values())


def test_event_kinds_come_from_the_placement_rows(soc_program):
    """The FPGA runs a linear as `fpga.gemm`; plots color it as the graph op `llm.linear`."""
    from pimc.plots import PlotData

    events = soc_program._static_timeline[0]
    data = PlotData("t", tuple(events), {}, soc_program.target, (), soc_program.manifest["placement"])
    gemms = [e for e in events if e.op == "fpga.gemm"]
    assert gemms and {data.kind_of(e) for e in gemms} == {"llm.linear"}
    for e in events:
        row = soc_program.manifest["placement"][e.phase][e.slot]
        assert (row["device"], row["latency_s"]) == (e.device, pytest.approx(e.end_s - e.start_s))


def test_run_plots_from_the_cli(bundle, tmp_path):
    out = tmp_path / "run"
    r = pimc_inprocess("run", bundle, "--input-ids", IDS, "--tokens", 4, "--plots", out, "--json")
    assert_ok(r)
    json.loads(r.out)  # stdout still holds only the JSON
    _check_pngs(out, {"gantt.png", "memory.png", "energy.png", "roofline-cpu.png"})


def test_report_and_estimate_plots_from_the_cli(bundle, tmp_path):
    assert_ok(pimc_inprocess("report", bundle, "--plots", tmp_path / "report"))
    _check_pngs(tmp_path / "report", {"gantt.png", "memory.png", "energy.png", "roofline-cpu.png"})
    assert_ok(pimc_inprocess("estimate", "gemv:256x256", "--target", "cpu-a76", "--plots", tmp_path / "kernel"))
    _check_pngs(tmp_path / "kernel", {"gantt.png", "memory.png", "energy.png", "roofline-cpu.png"})


# ----------------------------------------------------------------------------- what the plots draw

def test_roofline_peaks_are_the_targets_numbers():
    target = load_target("edge-soc")
    cpu, fpga = target.device("cpu"), target.device("fpga")
    roof = device_kind("cpu").roofline(cpu, target.memory_of(cpu))
    assert dict(roof.peaks) == {"SIMD peak, int8": 4 * 2.4e9 * 64, "SIMD peak, fp32": 4 * 2.4e9 * 16}
    assert roof.bandwidth_bytes_per_s == pytest.approx(19.2e9)
    roof = device_kind("fpga").roofline(fpga, target.memory_of(fpga))
    assert dict(roof.peaks) == pytest.approx({"PEs, int8 MAC": 2 * 84 * 32 * 100e6, "vector unit": 32 * 100e6})
    assert roof.bandwidth_bytes_per_s == pytest.approx(12e9 / 8)  # 12 Gbit/s, below the DDR4's 19.2 GB/s
    assert device_kind("cim").roofline is None and device_kind("dram_pud").roofline is None
    tpu = load_target("tpu-llm")
    sa = next(d for d in tpu.devices if d.kind == "systolic")
    roof = device_kind("systolic").roofline(sa, tpu.memory_of(sa))
    assert roof.peaks[0][1] == pytest.approx(2 * sa.rows * sa.cols * sa.clock_mhz * 1e6)


def test_placement_rows_carry_the_ops_flops(soc_program):
    rows = soc_program.manifest["placement"]["decode"]
    head = next(r for r in rows if r.get("weights") == ["lm_head.weight"])
    assert head["flops"] == 2 * 1 * 512 * 128  # one token x vocab 512 x hidden 128, a MAC is 2


def _synthetic_plot_data() -> PlotData:
    """Two calls of a one-op phase on a target with an on-chip SRAM: a spill and a reload each."""
    base = load_target("cpu-a76").model_dump(mode="json", exclude_none=True)
    sram_memory = {"name": "sram", "kind": "sram", "capacity_bytes": 1024, "bandwidth_gb_per_s": 100.0, "energy_pj_per_byte": 1.0}
    link = {"name": "sram_bus", "endpoints": ["sram", "dram"], "bandwidth_gb_per_s": 100.0, "latency_ns": 0.0,
            "energy_pj_per_byte": 2.0}
    target = Target.model_validate({**base, "memories": [*base["memories"], sram_memory], "links": [link]}, strict=False)
    sram, dram = "sram", "dram"
    schedule = Schedule(
        slots={"op0": OpSlot("op0", target.devices[0].name, 0.0, 4e-6)},
        residency=(
            Residency("w:a", dram, 0.0, 6e-6, None, 1000),
            Residency("t1", sram, 0.0, 2e-6, None, 300),
            Residency("t2", sram, 1e-6, 4e-6, None, 200),
            Residency("t1", dram, 2e-6, 6e-6, None, 300),
        ),
        transfers=(Transfer("t1", sram, dram, 1e-6, 2e-6, 300), Transfer("t1", dram, sram, 4e-6, 5e-6, 300)),
        solver="test", status="feasible", objective=1.0, bound=None, gap=None,
    )
    events = tuple(Event("decode", step, target.devices[0].name, "llm.linear", 10e-6 * step, 10e-6 * step + 4e-6, 1e-6, 0.0, 0)
                   for step in range(2))
    schedules = {"decode": schedule}
    return PlotData("synthetic", events, schedules, target, tuple(transfer_events(events, schedules, target)), {})


def test_transfers_are_spills_and_reloads_at_each_call():
    data = _synthetic_plot_data()
    dram = "dram"
    placed = transfer_events(data.events, data.schedules, data.target)
    assert [(round(t.start_s * 1e6, 9), round(t.end_s * 1e6, 9), t.src_memory, t.dst_memory, t.role) for t in placed] == [
        (1.0, 2.0, "sram", dram, "spill"), (4.0, 5.0, dram, "sram", "reload"),
        (11.0, 12.0, "sram", dram, "spill"), (14.0, 15.0, dram, "sram", "reload")]
    assert [t.energy_j for t in placed] == pytest.approx([300 * 2e-12] * 4)  # 300 B x the link's 2 pJ/B
    assert call_spans(data.events) == [("decode", 0, 0.0, 4e-6), ("decode", 1, 10e-6, pytest.approx(14e-6))]


def test_transfer_roles():
    def schedule(*moves):
        return Schedule(slots={}, residency=(), solver="t", status="t", objective=0.0, bound=None, gap=None,
                        transfers=tuple(Transfer(t, a, b, float(i), float(i) + 0.5, 8) for i, (t, a, b) in enumerate(moves)))

    offchip = {"dram", "lpddr"}
    roles = transfer_roles(schedule(("w", "dram", "sram"), ("x", "sram", "dram"), ("y", "sram", "dram"),
                                    ("x", "dram", "sram"), ("z", "dram", "lpddr")), offchip)
    assert roles == ["load", "spill", "writeback", "reload", "transfer"]


def test_occupancy_steps():
    times, levels = _steps([(0.0, 300), (1.0, 200), (2.0, -300), (4.0, -200), (2.0, 100)], 5.0)
    assert times == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert levels == [300, 500, 300, 100, 100]


def test_synthetic_schedule_plots_render():
    pngs = render_plots(_synthetic_plot_data())
    assert {"gantt.png", "memory.png", "energy.png"} <= set(pngs)
    assert all(png.startswith(PNG_MAGIC) for png in pngs.values())


# ----------------------------------------------------------------------------- --report F

@pytest.mark.parametrize("suffix", [".md", ".json"])
def test_report_file_format_follows_its_suffix(bundle, tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    r = pimc_inprocess("run", bundle, "--input-ids", IDS, "--tokens", 3, "--report", path)
    assert_ok(r)
    text = path.read_text()
    if suffix == ".json":
        data = json.loads(text)
        assert data["schema"] == "pimc.report/1" and data["run"]["generated_tokens"] == 3
    else:
        assert text.startswith("# pimc report: tiny-llama on cpu-a76\n") and "| run | 3 tokens" in text
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_report_file_on_estimate_and_compile(tmp_path):
    r = pimc_inprocess("estimate", "tiny-llama", "--target", "cpu-a76", "--seq-len", 8, "--report", tmp_path / "e.json", "--json")
    assert_ok(r)
    assert json.loads((tmp_path / "e.json").read_text()) == json.loads(r.out)
    r = pimc_inprocess("compile", "tiny-llama", "--seq-len", 8, "--context", 32, "-o", tmp_path / "b", "--report", tmp_path / "c.md")
    assert_ok(r)
    assert (tmp_path / "c.md").read_text() == pimc.load(tmp_path / "b").report().to_markdown()


def test_report_file_with_another_suffix_is_refused_before_any_work(tmp_path):
    r = pimc_inprocess("compile", "tiny-llama", "-o", tmp_path / "b", "--report", tmp_path / "r.txt")
    assert_user_error(r, "--report", "r.txt", ".md", ".json")
    assert list(tmp_path.iterdir()) == []


def test_markdown_report_matches_golden(golden, tiny_program):
    text = tiny_program.report().to_markdown()
    for needle in ("| time to first token |", "| tokens/s |", "| J/token |", "| off-chip traffic |", "status OPTIMAL, makespan 633.072 µs, gap 0.00%",
                   "## Devices", "## Top 10 ops by time"):
        assert needle in text
    golden.check_text("tiny-llama.cpu-a76.report.md", text)


def test_plots_into_a_used_folder_drop_rooflines_of_devices_now_idle(soc_program, tmp_path):
    out = tmp_path / "plots"
    out.mkdir()
    (out / "roofline-xbar.png").write_bytes(b"an earlier run's plot")
    (out / "notes.txt").write_text("mine")
    paths = soc_program.plots(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in paths] + ["notes.txt"])

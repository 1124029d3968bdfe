"""Off-chip bytes in reports: the ops' own traffic plus the transfers that cross the chip's edge
(loads, spills, reloads, writebacks) and the copies between two off-chip memories, each once, so that
the report's figure is the mapper's own."""

from __future__ import annotations

from pathlib import Path

import pytest

import pimc.api as api
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer
from pimc.report import PhaseStats, device_usage, to_markdown
from pimc.targets import load_target
from pimc.timeline import Event
from pimc.transfers import offchip_transfer_bytes, offchip_transfer_bytes_by_device, transfer_events

FIXTURES = Path(__file__).parent / "fixtures" / "targets"
SCRATCHPAD = FIXTURES / "cpu-scratchpad.toml"  # cpu computes from sram `spm`, linked to lpddr `dram` by `dma`
TWO_MEM = FIXTURES / "two-mem-link.toml"  # two lpddr memories joined by `bus`


def _spilling_schedule() -> Schedule:
    """a(w) -> t -> (spilled, reloaded) -> b(t) -> y, written back: one of each edge-crossing role."""
    return Schedule(
        slots={"a": OpSlot("a", "cpu", 1e-6, 2e-6), "b": OpSlot("b", "cpu", 5e-6, 6e-6)},
        residency=(Residency("t", "spm", 2e-6, 3e-6, None, 32), Residency("t", "dram", 3e-6, 4e-6, None, 32),
                   Residency("t", "spm", 4e-6, 6e-6, None, 32)),
        transfers=(Transfer("w", "dram", "spm", 0.0, 1e-6, 64), Transfer("t", "spm", "dram", 2e-6, 3e-6, 32),
                   Transfer("t", "dram", "spm", 3e-6, 4e-6, 32), Transfer("y", "spm", "dram", 6e-6, 7e-6, 16)),
        solver="test", status="FEASIBLE", objective=7e-6, bound=None, gap=None,
    )


def test_loads_spills_reloads_and_writebacks_add_to_the_ops_bytes():
    target = load_target(str(SCRATCHPAD))
    events = [Event("prefill", 0, "cpu", "a", 1e-6, 2e-6, 1e-9, 100.0, 0),
              Event("prefill", 0, "cpu", "b", 5e-6, 6e-6, 1e-9, 50.0, 1)]
    transfers = transfer_events(events, {"prefill": _spilling_schedule()}, target)
    assert sorted(t.role for t in transfers) == ["load", "reload", "spill", "writeback"]
    # by hand: ops 100 + 50 B; transfers 64 (load w) + 32 (spill t) + 32 (reload t) + 16 (writeback y) = 144 B
    assert offchip_transfer_bytes(transfers) == 144
    stats = PhaseStats.of(events, transfers)
    assert (stats.offchip_bytes, stats.ops_offchip_bytes) == (294.0, 150.0)
    usage = device_usage(events, {"cpu": "cpu"}, offchip_transfer_bytes_by_device(transfers, target))
    assert (usage["cpu"]["offchip_bytes"], usage["cpu"]["ops_offchip_bytes"]) == (294.0, 150.0)


def test_a_copy_between_two_offchip_memories_is_counted_once_and_charged_to_its_reader():
    """The producer wrote t to lpddr and the reader streams it from npu_mem (both in the ops' own
    bytes); the copy between them reads and writes off-chip memory besides: 128 B, once, as the mapper."""
    target = load_target(str(TWO_MEM))
    schedule = Schedule(
        slots={"a": OpSlot("a", "cpu", 0.0, 1e-6), "b": OpSlot("b", "npu", 2e-6, 3e-6)},
        residency=(), transfers=(Transfer("t", "lpddr", "npu_mem", 1e-6, 2e-6, 128),),
        solver="test", status="FEASIBLE", objective=3e-6, bound=None, gap=None,
    )
    events = [Event("decode", 0, "cpu", "a", 0.0, 1e-6, 1e-9, 40.0, 0), Event("decode", 0, "npu", "b", 2e-6, 3e-6, 1e-9, 0.0, 1)]
    transfers = transfer_events(events, {"decode": schedule}, target)
    assert [t.role for t in transfers] == ["transfer"]
    assert PhaseStats.of(events, transfers).offchip_bytes == 40.0 + 128
    assert offchip_transfer_bytes_by_device(transfers, target) == {"npu": 128.0}


def test_markdown_splits_ops_and_transfers_only_where_transfers_add():
    row = {"latency_s": 1e-3, "energy_j": 1e-3}
    report = {"model": "m", "target": "t", "prefill": {"tokens": 8, **row, "offchip_bytes": 3e6, "ops_offchip_bytes": 2e6},
              "decode": {"context": 32, **row, "offchip_bytes": 1e6, "ops_offchip_bytes": 1e6}, "ttft_s": 1e-3,
              "tokens_per_s": 1e3, "joules_per_token": 1e-3, "devices": {},
              "schedule": {"solver": "heft", "status": "FEASIBLE", "objective": 1e-3, "bound": None, "gap": None}}
    text = to_markdown(report)
    assert "| off-chip traffic | 3.000 MB prefill (2.000 MB by ops + 1.000 MB by transfers), 1.000 MB/token decode |" in text


@pytest.fixture
def mappers_offchip_bytes(monkeypatch):
    """{phase: `Schedule.offchip_bytes`} of the compile to come, from the mapper's own problems and
    schedules as that compile made them (call it after the compile)."""
    mapped = []
    real = api.map_and_lower

    def keep(*args, **kwargs):
        lowered = real(*args, **kwargs)
        mapped.append(lowered)
        return lowered

    monkeypatch.setattr(api, "map_and_lower", keep)
    return lambda: {f.name: f.schedule.offchip_bytes(f.problem) for f in mapped[0].mapped}


def test_scratchpad_report_equals_the_mappers_offchip_bytes(mappers_offchip_bytes):
    """tiny-llama prefill of 56 tokens spills on the 330 kB scratchpad: the report counts what the
    checked schedule moves, as `Schedule.offchip_bytes` prices it for the `offchip` objective."""
    program = api.estimate_program("tiny-llama", str(SCRATCHPAD), seq_len=56, context=64, wbits=8, abits=8)
    report = program.report().data
    mapper = mappers_offchip_bytes()
    for phase in ("prefill", "decode"):
        assert report[phase]["offchip_bytes"] == pytest.approx(mapper[phase], rel=1e-12)
        assert report[phase]["ops_offchip_bytes"] < report[phase]["offchip_bytes"]  # spills and loads add
    assert report["prefill"]["offchip_bytes"] == 4836352  # 3,674,112 B by ops + 1,162,240 B over `dma`
    assert report["devices"]["cpu"]["offchip_bytes"] == pytest.approx(mapper["prefill"] + mapper["decode"], rel=1e-12)


@pytest.mark.parametrize("target", [str(TWO_MEM), "edge-soc"])
def test_report_equals_the_mappers_offchip_bytes_with_copies_between_offchip_memories(mappers_offchip_bytes, target):
    """On two-mem-link (lpddr -> npu_mem over `bus`) and edge-soc (ddr4 <-> the crossbars' lpddr over
    PCIe) tiny-llama's tensors are copied between two off-chip memories: the report counts them as
    the mapper does."""
    report = api.estimate_program("tiny-llama", target, seq_len=8, context=32, wbits=8, abits=8).report().data
    mapper = mappers_offchip_bytes()
    copies = 0.0
    for phase in ("prefill", "decode"):
        assert report[phase]["offchip_bytes"] == pytest.approx(mapper[phase], rel=1e-12)
        copies += report[phase]["offchip_bytes"] - report[phase]["ops_offchip_bytes"]
    assert copies > 0


def test_a_transfer_into_a_memory_several_devices_share_is_charged_to_no_device():
    """edge-soc's cpu, pud and fpga all compute from ddr4: a copy lpddr -> ddr4 stays in the phase
    total (and on its link) but is charged to none of them; one into lpddr goes to xbar, its only user."""
    from pimc.transfers import TransferEvent

    target = load_target("edge-soc")
    into_ddr4 = TransferEvent("decode", 0, "pcie", "t", "lpddr", "ddr4", 0.0, 1e-6, 100, 0.0, "transfer", True)
    into_lpddr = TransferEvent("decode", 0, "pcie", "u", "ddr4", "lpddr", 1e-6, 2e-6, 30, 0.0, "transfer", True)
    assert offchip_transfer_bytes([into_ddr4, into_lpddr]) == 130
    assert offchip_transfer_bytes_by_device([into_ddr4, into_lpddr], target) == {"xbar": 30.0}

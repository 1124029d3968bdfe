"""PNG plots of a schedule or a run (`pimc report/run/estimate --plots DIR`).

    gantt.png            what ran on each device (and link) over time, by op kind, phases marked
    memory.png           bytes resident in each memory over time, spills/reloads marked
    energy.png           energy by device and op kind, per phase (stacked bars)
    roofline-DEVICE.png  each op of a device at its arithmetic intensity and achieved rate, under
                         the device's peak compute and bandwidth (where its kind has such peaks)

Every figure has a fixed pixel size (`SIZES`) and byte-stable PNG bytes. All figures are drawn
before any file is written, and each file is written through a temporary sibling, so a failure
leaves no partial plot behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pimc.files import write_bytes_atomic
from pimc.mapping.schedule import Schedule
from pimc.targets import Target
from pimc.timeline import Event
from pimc.transfers import TransferEvent

__all__ = ["PlotData", "SIZES", "render_plots", "write_plots"]

SIZES = {"gantt": (1500, 650), "memory": (1400, 800), "energy": (1400, 650), "roofline": (1100, 750)}
"""Pixel size (width, height) of each kind of plot."""


@dataclass(frozen=True)
class PlotData:
    """Everything the plots read: the device events, each phase's checked schedule, the target
    (devices, memories, peaks), the events' link transfers and the placement rows (per op: device,
    cost, flops)."""

    title: str
    events: tuple[Event, ...]
    schedules: Mapping[str, Schedule]
    target: Target
    transfers: tuple[TransferEvent, ...]
    """`pimc.transfers.transfer_events` of `events`: the list the report and trace price, so the
    plots draw and sum the same transfers."""
    placement: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    run: bool = False
    """True for a simulated run (prefill + many decode steps), False for one call of each phase."""

    @property
    def end_s(self) -> float:
        """When the last op or transfer ends (0 when nothing ran): the right end of every time axis."""
        return max([e.end_s for e in self.events] + [t.end_s for t in self.transfers] + [0.0])

    def kind_of(self, event: Event) -> str:
        """The graph op kind (`llm.linear` ...) an event ran, from its placement row; the device
        op's own name when the bundle has no row for it. Devices lower one kind to different ops
        (`fpga.gemm`, `cim.linear`), so colors by graph kind compare across devices."""
        rows = self.placement.get(event.phase)
        if rows is not None and event.slot is not None and 0 <= event.slot < len(rows):
            return row_kind(rows[event.slot])
        return event.op


def row_kind(row: dict[str, Any]) -> str:
    """A placement row's op kind; a fused op names its pattern."""
    return f"{row['kind']} ({row['fused']['pattern']})" if "fused" in row else row["kind"]


def render_plots(data: PlotData) -> dict[str, bytes]:
    """{file name: PNG bytes} of every plot."""
    from pimc.plots import energy, gantt, memory, roofline
    from pimc.plots.style import KindColors, png_bytes

    colors = KindColors((data.kind_of(e), e.end_s - e.start_s) for e in data.events)
    figures = {
        "gantt.png": gantt.plot(data, colors),
        "memory.png": memory.plot(data),
        "energy.png": energy.plot(data, colors),
        **{f"roofline-{device}.png": fig for device, fig in roofline.plots(data, colors).items()},
    }
    return {name: png_bytes(fig) for name, fig in figures.items()}


def write_plots(data: PlotData, directory: str | Path) -> list[Path]:
    """Render every plot, then write them into `directory` (created if needed); the paths written.
    Rooflines of devices this program did not use, left there by an earlier run, are removed."""
    rendered = render_plots(data)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in rendered.items():
        path = directory / name
        write_bytes_atomic(path, png)
        paths.append(path)
    for stale in sorted(directory.glob("roofline-*.png")):  # devices an earlier run into this folder used
        if stale.name not in rendered:
            stale.unlink()
    return paths

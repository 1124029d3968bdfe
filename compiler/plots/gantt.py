"""Gantt chart: one lane per device (ops as bars colored by op kind) and per link (transfers),
with each call of a phase (prefill, decode steps) separated and named above the chart."""

from __future__ import annotations

from collections import defaultdict

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pimc.plots.style import TRANSFER_COLORS, KindColors, new_figure, time_unit
from pimc.transfers import ROLES

MIN_BAR_PX = 1.0
"""Bars shorter than this still show (as a hairline), so short ops on a long axis are not lost."""


def call_spans(events) -> list[tuple[str, int, float, float]]:
    """(phase, step, start_s, end_s) of each call of a phase, in time order."""
    spans: dict[tuple[str, int], list[float]] = {}
    for e in events:
        span = spans.setdefault((e.phase, e.step), [e.start_s, e.end_s])
        span[0], span[1] = min(span[0], e.start_s), max(span[1], e.end_s)
    return sorted(((p, s, a, b) for (p, s), (a, b) in spans.items()), key=lambda c: (c[2], c[0], c[1]))


def plot(data, colors: KindColors) -> Figure:
    from pimc.plots import SIZES

    fig = new_figure(SIZES["gantt"])
    ax = fig.add_subplot()
    transfers = data.transfers
    links = sorted({(t.src_memory, t.dst_memory) for t in transfers})
    devices = [d for d in data.target.devices]
    end_s = data.end_s
    scale, unit = time_unit(end_s)
    min_width = end_s * scale * MIN_BAR_PX / (SIZES["gantt"][0] * 0.75)

    busy: dict[str, int] = defaultdict(int)
    for lane, device in enumerate(devices):
        by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for e in data.events:
            if e.device == device.name:
                by_key[colors.key(data.kind_of(e))].append((e.start_s * scale, max((e.end_s - e.start_s) * scale, min_width)))
                busy[device.name] += 1
        for key in colors.legend_keys():
            if by_key.get(key):
                ax.broken_barh(by_key[key], (lane - 0.4, 0.8), facecolors=colors.color(key), linewidth=0)
    for i, link in enumerate(links):
        lane = len(devices) + i
        by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for t in transfers:
            if (t.src_memory, t.dst_memory) == link:
                by_kind[t.role].append((t.start_s * scale, max((t.end_s - t.start_s) * scale, min_width)))
        for kind, spans in sorted(by_kind.items()):
            ax.broken_barh(spans, (lane - 0.4, 0.8), facecolors=TRANSFER_COLORS[kind], linewidth=0)

    _mark_calls(ax, data.events, scale)
    labels = [f"{d.name} ({d.kind})" + ("" if busy[d.name] else "\nidle") for d in devices]
    labels += [f"link {src} → {dst}" for src, dst in links]
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, end_s * scale * 1.01 if end_s > 0 else 1)
    ax.set_xlabel(f"time ({unit})")
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    ax.set_title(f"{data.title}: ops per device over time", loc="left", pad=22)

    handles = [Patch(color=colors.color(k), label=colors.label(k)) for k in colors.legend_keys()]
    kinds_seen = [role for role in ROLES if any(t.role == role for t in transfers)]
    handles += [Patch(color=TRANSFER_COLORS[k], label=f"{k} (link lanes)") for k in kinds_seen]
    fig.legend(handles=handles, loc="outside right upper", title="op kind / transfer" if kinds_seen else "op kind", fontsize=9, title_fontsize=9)
    return fig


def _mark_calls(ax, events, scale: float) -> None:
    """Dashed lines between calls; the prefill and the decode steps named above the axes."""
    calls = call_spans(events)
    for _, _, start, _ in calls[1:]:
        ax.axvline(start * scale, color="0.45", linestyle="--", linewidth=0.8)
    by_phase: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for phase, _, start, stop in calls:
        by_phase[phase].append((start, stop))
    top = ax.get_xaxis_transform()
    for phase, spans in by_phase.items():
        start, stop = min(s for s, _ in spans), max(e for _, e in spans)
        label = phase if len(spans) == 1 else f"{phase} × {len(spans)} steps"
        ax.text((start + stop) / 2 * scale, 1.01, label, transform=top, ha="center", va="bottom", fontsize=10)

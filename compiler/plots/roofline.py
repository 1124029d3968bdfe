"""Roofline per device: each op it runs at (arithmetic intensity, achieved rate), under its peaks.

    intensity = flops / off-chip bytes      (the op's work count over the bytes its device's cost
                                             model moves off chip for it)
    achieved  = flops / latency             (latency as costed, overheads included)

The ceilings come from the device kind's `roofline` hook (its own target numbers): a horizontal
line per peak rate and the bandwidth diagonal. Kinds without one (compute in memory, whose rate
depends on bit widths and layout), and devices whose ops all keep their operands on chip (resident
crossbar weights: intensity unbounded), show each op's achieved rate against its size instead.
Ops that move no off-chip bytes (intensity unbounded) sit in a shaded band at the right edge, under
the compute peaks that bound them; ops with no arithmetic cannot be placed and are counted in a note.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pimc.plots.style import KindColors, new_figure, si
from pimc.targets.kinds import device_kind

PHASE_MARKERS = ("o", "^", "s", "D", "v")


def plots(data, colors: KindColors) -> dict[str, Figure]:
    """{device: figure} for every device that runs at least one op."""
    rows = defaultdict(list)
    for function, fn_rows in data.placement.items():
        for r in fn_rows:
            rows[r["device"]].append((function, r))
    return {d.name: _plot(data, d, rows[d.name], colors) for d in data.target.devices if rows[d.name]}


def _plot(data, device, rows, colors: KindColors) -> Figure:
    from pimc.plots import SIZES, row_kind

    fig = new_figure(SIZES["roofline"])
    ax = fig.add_subplot()
    kind = device_kind(device.kind)
    roof = kind.roofline(device, data.target.memory_of(device)) if kind.roofline else None
    functions = list(dict.fromkeys(f for f, _ in rows))
    marker = {f: PHASE_MARKERS[i % len(PHASE_MARKERS)] for i, f in enumerate(functions)}

    placed, by_size, onchip, no_work, no_counts = defaultdict(list), defaultdict(list), defaultdict(list), 0, 0
    for function, r in rows:
        if "flops" not in r:
            no_counts += 1
        elif r["flops"] <= 0:
            no_work += 1
        else:
            by_size[(colors.key(row_kind(r)), function)].append((r["flops"], r["flops"] / r["latency_s"]))
            if r["offchip_bytes"] > 0:
                placed[(colors.key(row_kind(r)), function)].append((r["flops"] / r["offchip_bytes"], r["flops"] / r["latency_s"]))
            else:
                onchip[(colors.key(row_kind(r)), function)].append(r["flops"] / r["latency_s"])
    if not by_size:
        ax.axis("off")
        ax.text(0.5, 0.5, f"{device.name} ran {len(rows)} ops, none with arithmetic ({no_counts} without work counts):\n"
                "nothing to place on a roofline", ha="center", va="center", fontsize=12)
        ax.set_title(f"{data.title}: roofline of {device.name} ({device.kind})", loc="left", fontsize=10)
        return fig
    if roof is not None and placed:
        shown = placed
        x_hi = _ceilings(ax, roof, placed, [y for ys in onchip.values() for y in ys])
        if onchip:  # unbounded intensity: a band at the right edge, x chosen only to sit inside it
            x_band = x_hi / 1.8
            ax.axvspan(x_hi / 3.2, x_hi, color="0.93", zorder=0, linewidth=0)
            ax.text(x_band, 0.02, "no off-chip\nbytes", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="0.35")
            shown = defaultdict(list, {k: list(v) for k, v in placed.items()})
            for key, ys in onchip.items():
                shown[key] += [(x_band, y) for y in ys]
        ax.set_xlabel("arithmetic intensity (FLOP per off-chip byte)")
        meaning = roof.meaning
    else:  # no peaks, or every op keeps its operands on chip: a rate-vs-size view instead
        shown = by_size
        _limits(ax, [x for pts in shown.values() for x, _ in pts], [y for pts in shown.values() for _, y in pts])
        ax.set_xlabel("work per op (FLOP)")
        why = (f"no ceilings: a {device.kind} device computes in its memory arrays; its rate depends on bit widths and "
               "layout, not on one peak") if roof is None else "no op moves off-chip bytes (operands stay on chip)"
        meaning = f"{why}; ops shown by size instead of intensity"
    for key in colors.legend_keys():
        for function in functions:
            pts = shown.get((key, function))
            if pts:
                ax.scatter([x for x, _ in pts], [y for _, y in pts], color=colors.color(key), marker=marker[function],
                           s=36, alpha=0.75, edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_ylabel("achieved rate (FLOP/s)")
    ax.grid(which="major", color="0.9")
    ax.set_axisbelow(True)
    ax.set_title(f"{data.title}: roofline of {device.name} ({device.kind})\n" + textwrap.fill(meaning, 110),
                 loc="left", fontsize=10)

    notes = []
    if no_work:
        notes.append(f"{no_work} ops without arithmetic (data movement, views) not shown")
    if no_counts:
        notes.append(f"{no_counts} ops without work counts (bundle from an older pimc) not shown")
    if notes:
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=9, va="bottom", ha="left",
                bbox={"facecolor": "white", "edgecolor": "0.8"})

    kinds_here = [k for k in colors.legend_keys() if any(key == k for key, _ in shown)]
    handles = [Line2D([], [], marker="o", linestyle="", color=colors.color(k), label=colors.label(k)) for k in kinds_here]
    handles += [Line2D([], [], marker=marker[f], linestyle="", color="0.4", label=f) for f in functions if any(fn == f for _, fn in shown)]
    if roof is not None and placed:
        handles.append(Line2D([], [], color="black", label=f"off-chip bandwidth {si(roof.bandwidth_bytes_per_s, 'B/s')}"))
    if handles:
        fig.legend(handles=handles, loc="outside right upper", title="op kind / phase", fontsize=9, title_fontsize=9)
    return fig


def _limits(ax, xs: list[float], ys: list[float]) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(xs, default=1.0) / 4, max(xs, default=1.0) * 4)
    ax.set_ylim(min(ys, default=1.0) / 4, max(ys, default=1.0) * 4)


def _ceilings(ax, roof, placed, extra_ys: list[float]) -> float:
    """Axes spanning the points (and `extra_ys`) and the ridge; the bandwidth diagonal up to the top
    peak, a line per peak. Returns the right end of the x axis."""
    xs = [x for pts in placed.values() for x, _ in pts]
    ys = [y for pts in placed.values() for _, y in pts] + extra_ys
    top = max(p for _, p in roof.peaks)
    ridge = top / roof.bandwidth_bytes_per_s
    x_lo, x_hi = min(min(xs) / 4, ridge / 30), max(max(xs) * 4, ridge * 30)
    y_lo = min(min(ys), roof.bandwidth_bytes_per_s * x_lo) / 4
    _limits(ax, [x_lo * 4, x_hi / 4], [y_lo * 4, max(max(ys), top)])
    ax.plot([x_lo, ridge], [roof.bandwidth_bytes_per_s * x_lo, top], color="black", linewidth=1.5, zorder=2)
    for label, peak in roof.peaks:
        ax.plot([peak / roof.bandwidth_bytes_per_s, x_hi], [peak, peak], color="black", linewidth=1.2,
                linestyle="-" if peak == top else "--", zorder=2)
        # at the left edge on a dotted guide at the peak's height: the roofline leaves that corner
        # empty (no op is both that slow in bytes and that fast), clear of the on-chip band at the right
        ax.plot([x_lo, peak / roof.bandwidth_bytes_per_s], [peak, peak], color="0.6", linestyle=":", linewidth=0.8, zorder=1)
        ax.text(x_lo * 1.3, peak * 1.12, f"{label}: {si(peak, 'FLOP/s')}", ha="left", va="bottom", fontsize=9)
    return x_hi

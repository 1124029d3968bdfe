"""Energy breakdown: per phase, one stacked bar per device (a segment per op kind) and one bar
per link (its transfers: bytes times the link's energy per byte).

Device energies are the events' (each op's cost-model energy, static power over its latency
included), link energies the transfers' (`pimc.transfers`): together the report's `energy_j`.
"""

from __future__ import annotations

from collections import defaultdict

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pimc.plots.style import TRANSFER_COLORS, KindColors, energy_unit, new_figure, si


def plot(data, colors: KindColors) -> Figure:
    from pimc.plots import SIZES

    fig = new_figure(SIZES["energy"])
    phases = list(dict.fromkeys(e.phase for e in sorted(data.events, key=lambda e: (e.start_s, e.phase))))
    devices = [d.name for d in data.target.devices]
    links = sorted(link.name for link in data.target.links)
    bars = devices + [f"{name}\n(link)" for name in links]
    if not phases:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no ops ran: no energy to show", ha="center", va="center")
        return fig
    axes = fig.subplots(1, len(phases), squeeze=False)[0]
    for ax, phase in zip(axes, phases):
        events = [e for e in data.events if e.phase == phase]
        steps = len({e.step for e in events})
        table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for e in events:
            table[colors.key(data.kind_of(e))][e.device] += e.energy_j
        link_j = {name: sum(t.energy_j for t in data.transfers if t.phase == phase and t.link == name) for name in links}
        totals = [sum(table[k][d] for k in table) for d in devices] + [link_j[name] for name in links]
        scale, unit = energy_unit(max(totals, default=0.0) or 1.0)
        bottom = [0.0] * len(bars)
        for key in colors.legend_keys():
            if key not in table:
                continue
            heights = [table[key][d] * scale for d in devices] + [0.0] * len(links)
            ax.bar(bars, heights, bottom=bottom, color=colors.color(key), width=0.6)
            bottom = [b + h for b, h in zip(bottom, heights)]
        if links:
            ax.bar(bars, [0.0] * len(devices) + [link_j[name] * scale for name in links], color=TRANSFER_COLORS["transfer"],
                   width=0.6)
        for x, total in enumerate(totals):
            ax.text(x, total * scale, si(total, "J") if total else "idle", ha="center", va="bottom", fontsize=9)
        ax.set_ylim(0, max(totals, default=0.0) * scale * 1.15 or 1)
        ax.set_ylabel(f"energy ({unit})")
        scope = f"{steps} steps, total" if steps > 1 else "one call"
        ax.set_title(f"{phase} ({scope}): {si(sum(totals), 'J')}", fontsize=11)
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
    fig.suptitle(f"{data.title}: energy by device and op kind", x=0.01, ha="left")
    handles = [Patch(color=colors.color(k), label=colors.label(k)) for k in colors.legend_keys()]
    if links:
        handles.append(Patch(color=TRANSFER_COLORS["transfer"], label="link transfers"))
    fig.legend(handles=handles, loc="outside right upper", title="op kind", fontsize=9, title_fontsize=9)
    return fig

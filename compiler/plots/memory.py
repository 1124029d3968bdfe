"""Memory occupancy over time: one panel per memory, from each phase's checked schedule placed at
the time each call began.

In an off-chip memory the weights and the KV cache stay for the whole run and dwarf the
activations, so its panel draws the bytes that come and go (activations, inputs, outputs) and
states the weights and KV cache in its title. An on-chip memory (a scratchpad) holds copies that
come and go, weights included: its panel draws everything against a dashed capacity line.
Transfers are marked where they leave (▲) and arrive (▼), colored by role (load, spill, reload,
writeback: `pimc.transfers.transfer_roles`).
"""

from __future__ import annotations

from collections import defaultdict

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pimc.plots.style import TRANSFER_COLORS, bytes_unit, new_figure, si, time_unit
from pimc.timeline import call_offsets
from pimc.transfers import ROLES

RESIDENT_PREFIXES = {"w:": "weights", "cache:": "KV cache"}
"""Tensor name prefixes (mapping/from_ir.py names) of what is resident for the whole run."""


def _resident_kind(tensor: str) -> str | None:
    return next((kind for prefix, kind in RESIDENT_PREFIXES.items() if tensor.startswith(prefix)), None)


def plot(data) -> Figure:
    from pimc.plots import SIZES

    fig = new_figure(SIZES["memory"])
    offchip = data.target.offchip_memories()
    used = {r.memory for s in data.schedules.values() for r in s.residency if r.size_bytes is not None}
    memories = [m for m in data.target.memories if m.name in used]
    if not memories:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "the schedules record no tensor sizes (a bundle from an older pimc): nothing to plot",
                ha="center", va="center")
        return fig

    deltas: dict[str, list[tuple[float, int]]] = defaultdict(list)
    resident: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for phase, offset in call_offsets(list(data.events), data.schedules):
        schedule = data.schedules.get(phase)
        for r in schedule.residency if schedule else ():
            if r.size_bytes is None:
                continue
            kind = _resident_kind(r.tensor) if r.memory in offchip else None
            if kind is not None:
                resident[r.memory][kind][r.tensor] = r.size_bytes
            else:
                deltas[r.memory] += [(offset + r.start_s, r.size_bytes), (offset + r.end_s, -r.size_bytes)]

    transfers = data.transfers
    end_s = data.end_s
    tscale, tunit = time_unit(end_s)
    axes = fig.subplots(len(memories), 1, sharex=True, squeeze=False)[:, 0]
    for ax, memory in zip(axes, memories):
        times, levels = _steps(deltas[memory.name], end_s)
        onchip = memory.name not in offchip
        top = max(max(levels, default=0.0), memory.capacity_bytes if onchip else 0)
        bscale, bunit = bytes_unit(top or 1.0)
        ax.fill_between([t * tscale for t in times], [v * bscale for v in levels], step="post", color="#4e79a7", alpha=0.35,
                        linewidth=0)
        ax.step([t * tscale for t in times], [v * bscale for v in levels], where="post", color="#4e79a7", linewidth=1.0)
        if onchip:
            ax.axhline(memory.capacity_bytes * bscale, color="0.3", linestyle="--", linewidth=1.0)
        ax.set_ylim(0, top * bscale * 1.25 or 1)
        ax.set_ylabel(f"{bunit}\n{'resident' if onchip else 'activations'}")
        held = ", ".join(f"{kind} {si(sum(sizes.values()), 'B')}" for kind, sizes in sorted(resident[memory.name].items()))
        where = "off-chip" if memory.name in offchip else "on-chip"
        ax.set_title(f"{memory.name} ({memory.kind}, {where}, capacity {si(memory.capacity_bytes, 'B')})"
                     + (f" — resident throughout, not drawn: {held}" if held else ""), loc="left", fontsize=10)
        ax.grid(color="0.9")
        _mark_transfers(ax, memory.name, transfers, tscale)
    axes[-1].set_xlabel(f"time ({tunit})")
    axes[-1].set_xlim(0, end_s * tscale * 1.01 if end_s > 0 else 1)
    fig.suptitle(f"{data.title}: bytes resident per memory", x=0.01, ha="left")

    kinds = [role for role in ROLES if any(t.role == role for t in transfers)]
    onchip = any(m.name not in offchip for m in memories)
    drawn = "resident bytes (off-chip: weights, KV cache not drawn)" if onchip else "activations, inputs, outputs"
    handles = [Line2D([], [], color="#4e79a7", linewidth=6, alpha=0.5, label=drawn)]
    if onchip:
        handles.append(Line2D([], [], color="0.3", linestyle="--", label="capacity"))
    handles += [Line2D([], [], color=TRANSFER_COLORS[k], marker="s", linestyle="",
                       label=f"{k} ({sum(1 for t in transfers if t.role == k)})") for k in kinds]
    if transfers:
        handles += [Line2D([], [], color="0.4", marker="^", linestyle="", label="leaves this memory"),
                    Line2D([], [], color="0.4", marker="v", linestyle="", label="arrives")]
    else:
        handles.append(Line2D([], [], linestyle="", label="no spills, reloads or transfers"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    return fig


def _steps(deltas: list[tuple[float, int]], end_s: float) -> tuple[list[float], list[float]]:
    """Occupancy as a step function: one sample per instant (frees before allocations at a tie)."""
    times, levels, level = [0.0], [0.0], 0
    for time_s, delta in sorted(deltas, key=lambda d: (d[0], d[1])):
        level += delta
        if times[-1] == time_s:
            levels[-1] = level
        else:
            times.append(time_s)
            levels.append(level)
    times.append(max(end_s, times[-1]))
    levels.append(levels[-1])
    return times, levels


def _mark_transfers(ax, memory: str, transfers, tscale: float) -> None:
    """▲ where a transfer leaves this memory, ▼ where one arrives, near the top of the panel."""
    top = ax.get_xaxis_transform()
    for t in transfers:
        color = TRANSFER_COLORS[t.role]
        if t.src_memory == memory:
            ax.plot([t.start_s * tscale], [0.9], marker="^", color=color, transform=top, markersize=7, clip_on=False)
        if t.dst_memory == memory:
            ax.plot([t.end_s * tscale], [0.9], marker="v", color=color, transform=top, markersize=7, clip_on=False)

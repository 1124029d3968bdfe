"""The Pareto plot of a sweep: decode throughput against energy per token (calls and energy per
call for a kernel-only sweep), front marked.

Drawn on a bare matplotlib Figure (no pyplot state), saved without a Software/date stamp so the
same results give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pimc.sweep.results import UNITS, objective

MAX_LABELS = 12
SIZE_IN, DPI = (8.0, 5.5), 100


def pareto_png(title: str, rows: Sequence[dict[str, Any]], axes: Sequence[str]) -> bytes:
    """PNG bytes; every ok model point is drawn (colour per model), the front joined; points are
    labelled with the values of the swept settings (only the front's when there are many)."""
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    units = {o[0] for r in rows if (o := objective(r))}
    unit = "token" if "token" in units or not units else "call"
    plotted = [r for r in rows if (objective(r) or ("",))[0] == unit]
    models = list(dict.fromkeys(r["params"]["model"] for r in plotted))
    for i, model in enumerate(models):
        mine = [r for r in plotted if r["params"]["model"] == model]
        ax.scatter([_xy(r)[0] for r in mine], [_xy(r)[1] for r in mine],
                   s=28, color=f"C{i}", alpha=0.75, label=model, zorder=2)
    front = sorted((r for r in plotted if r["pareto"]), key=lambda r: _xy(r)[0])
    if front:
        xs = [_xy(r)[0] for r in front]
        ys = [_xy(r)[1] for r in front]
        ax.plot(xs, ys, color="black", linewidth=1.2, drawstyle="steps-post", zorder=1)
        ax.scatter(xs, ys, s=90, facecolors="none", edgecolors="black", linewidths=1.4,
                   label="Pareto front", zorder=3)
    if plotted:
        for axis, values in (("x", [_xy(r)[0] for r in plotted]),
                             ("y", [_xy(r)[1] for r in plotted])):
            if min(values) > 0 and max(values) / min(values) > 20:
                (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    labelled = [a for a in axes if a != "model" or len(models) == 1]
    named = plotted if len(plotted) <= MAX_LABELS else front[:MAX_LABELS]
    for (x, y), group in _coincident(named).items():
        text = ", ".join(f"{a}=" + "/".join(dict.fromkeys(_short(r["params"].get(a)) for r in group)) for a in labelled)
        right = _x_fraction(ax, x) > 0.5  # a label right of a point in the right half would leave the axes
        ax.annotate(text or "#" + "/".join(str(r["index"]) for r in group), (x, y), xytext=(-6 if right else 6, 4),
                    textcoords="offset points", ha="right" if right else "left", fontsize=7,
                    fontweight="bold" if any(r["pareto"] for r in group) else "normal")
    if plotted:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no point to plot: all failed",
                ha="center", va="center", transform=ax.transAxes)
    failed = sum(1 for r in rows if r["status"] != "ok")
    other = len(rows) - failed - len(plotted)
    ylabel, xlabel = UNITS[unit]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: {len(plotted)} points" + (f", {failed} failed" if failed else "")
                 + (f", {other} kernel points not shown" if other else ""), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _x_fraction(ax, x: float) -> float:
    """Where `x` sits across the axes, 0 (left) to 1 (right), on its linear or log scale."""
    lo, hi = ax.get_xlim()
    if ax.get_xscale() == "log":
        lo, hi, x = math.log10(lo), math.log10(hi), math.log10(x)
    return (x - lo) / (hi - lo) if hi > lo else 0.5


def _coincident(rows: Sequence[dict[str, Any]], rel: float = 0.02) -> dict[tuple[float, float], list[dict[str, Any]]]:
    """Rows grouped by where they are drawn (both figures within `rel` of the group's first), so
    points on (nearly) the same spot share one label instead of overprinting."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for r in rows:
        x, y = _xy(r)
        spot = next((s for s in groups if _near(s[0], x, rel) and _near(s[1], y, rel)), (x, y))
        groups.setdefault(spot, []).append(r)
    return groups


def _near(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _xy(row: dict[str, Any]) -> tuple[float, float]:
    """Where a point is drawn: (energy per unit, rate)."""
    _, rate, energy = objective(row)
    return energy, rate


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

"""What every plot shares: figures of a fixed pixel size, byte-stable PNG bytes, units, op colors.

Figures are made with matplotlib's object API on the Agg canvas (no pyplot state, no GUI backend),
so plotting works headless and in threads. PNGs carry no software version or timestamp, so the same
data gives the same bytes.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
MAX_KIND_COLORS = 10
"""Op kinds with their own color; the rest (least time) share OTHER."""
OTHER = "other"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#17becf")
"""Tableau 10: distinct hues that stay apart in print and for common color blindness."""
OTHER_COLOR = "#bab0ac"
TRANSFER_COLORS = {"load": "#01665e", "spill": "#b2182b", "reload": "#542788", "writeback": "#8c510a", "transfer": "#1b1b1b"}
"""Darker than the op colors (in the Gantt chart they have lanes of their own): links get their own lanes, memory panels mark them."""


def new_figure(size_px: tuple[int, int]) -> Figure:
    fig = Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG at its fixed size; no metadata that changes between runs or versions."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def short_kind(op: str) -> str:
    """`llm.linear` -> `linear`: the dialect prefix is the same on every bar."""
    return op.removeprefix("llm.")


class KindColors:
    """One color per op kind, the same in every plot: kinds ordered by total time, the longest
    MAX_KIND_COLORS - 1 get their own color when there are more kinds than colors."""

    def __init__(self, weighted: Iterable[tuple[str, float]]):
        totals: dict[str, float] = defaultdict(float)
        for kind, seconds in weighted:
            totals[short_kind(kind)] += seconds
        ranked = sorted(totals, key=lambda k: (-totals[k], k))
        own = ranked if len(ranked) <= MAX_KIND_COLORS else ranked[: MAX_KIND_COLORS - 1]
        self.colors = {k: PALETTE[i] for i, k in enumerate(own)}
        self.grouped = sorted(set(ranked) - set(own))
        """Kinds drawn as OTHER."""

    def key(self, op: str) -> str:
        kind = short_kind(op)
        return kind if kind in self.colors else OTHER

    def color(self, key: str) -> str:
        return self.colors.get(key, OTHER_COLOR)

    def legend_keys(self) -> list[str]:
        return [*self.colors, *([OTHER] if self.grouped else [])]

    def label(self, key: str) -> str:
        if key != OTHER:
            return key
        shown = ", ".join(self.grouped[:3]) + (", ..." if len(self.grouped) > 3 else "")
        return f"other ({shown})"


def _unit(value: float, unit: str, prefixes: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """(scale, label): multiply seconds/joules/bytes by scale to read them in label units."""
    for factor, prefix in prefixes:
        if abs(value) >= factor:
            return 1.0 / factor, f"{prefix}{unit}"
    factor, prefix = prefixes[-1]
    return 1.0 / factor, f"{prefix}{unit}"


def time_unit(seconds: float) -> tuple[float, str]:
    return _unit(seconds, "s", ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")))


def energy_unit(joules: float) -> tuple[float, str]:
    return _unit(joules, "J", ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")))


def bytes_unit(nbytes: float) -> tuple[float, str]:
    return _unit(nbytes, "B", ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")))


def si(value: float, unit: str) -> str:
    """A value with an SI prefix and 3 significant digits, e.g. 614 GFLOP/s."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"

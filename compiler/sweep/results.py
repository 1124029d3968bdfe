"""A sweep's results: one row per point in point order, the Pareto front, CSV and JSON text.

Everything here is deterministic for the same spec and pimc version: wall times stay in the journal.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pimc import __version__
from pimc.sweep.evaluate import HEADLINE, PHASE_FIELDS, PHASES
from pimc.sweep.spec import OPTION_NAMES, SweepSpec

SCHEMA = "pimc.sweep/1"


def build_rows(spec: SweepSpec, records: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point (point order): parameters, status, figures, and whether it is Pareto-optimal."""
    rows = []
    for point in spec.points:
        record = records[point.key]
        rows.append({
            "index": point.index,
            "key": point.key,
            "params": point.params,
            "status": record["status"],
            "error": record.get("error", ""),
            "metrics": record.get("metrics") or {},
            "devices": record.get("devices") or {},
        })
    for unit in UNITS:
        mine = [row for row in rows if (objective(row) or ("",))[0] == unit]
        for row, optimal in zip(mine, pareto_front([objective(row)[1:] for row in mine])):
            row["pareto"] = optimal
    for row in rows:
        row.setdefault("pareto", False)
    return rows


UNITS = {
    "token": ("decode throughput (tokens/s)", "decode energy (J/token)"),
    "call": ("kernel throughput (calls/s)", "kernel energy (J/call)"),
}
"""What the Pareto front trades, per kind of point: models per generated token, kernels per call."""


def objective(row: dict[str, Any]) -> tuple[str, float, float] | None:
    """(unit, rate, energy per unit) of an ok point: tokens/s and J/token for a model, calls/s and
    J/call for a kernel; None for a failed point."""
    m = row["metrics"]
    if row["status"] != "ok":
        return None
    if m.get("tokens_per_s") is not None and m.get("joules_per_token") is not None:
        return "token", m["tokens_per_s"], m["joules_per_token"]
    if m.get("kernel_latency_s") and m.get("kernel_energy_j") is not None:
        return "call", 1.0 / m["kernel_latency_s"], m["kernel_energy_j"]
    return None


def pareto_front(points: Sequence[tuple[float, float] | None]) -> list[bool]:
    """Which (rate, energy) points no other point dominates (at least as fast and as frugal, better
    in one); None (a failed point) is never on the front."""
    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    valid = [p for p in points if p is not None]
    return [p is not None and not any(dominates(q, p) for q in valid) for p in points]


def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Headline figures and per-phase figures; kernel columns only when a kernel point is present."""
    has = {phase: any(r["metrics"].get(f"{phase}_latency_s") is not None for r in rows) for phase in PHASES}
    phases = [p for p in PHASES if has[p]] or ["prefill", "decode"]
    headline = list(HEADLINE) if has["prefill"] or not has["kernel"] else []
    return headline + [f"{p}_{f}" for p in phases for f in PHASE_FIELDS] + ["schedule_solver", "schedule_status", "schedule_gap"]


def to_csv(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str:
    params = [*OPTION_NAMES, *spec.override_names]
    metrics = metric_columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", *params, "status", *metrics, "pareto", "error", "key"])
    for row in rows:
        writer.writerow([
            row["index"], *(_cell(row["params"].get(p)) for p in params), row["status"],
            *(_cell(row["metrics"].get(m)) for m in metrics), _cell(row["pareto"]), row["error"], row["key"],
        ])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def to_json(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str:
    data = {
        "schema": SCHEMA,
        "name": spec.name,
        "description": spec.description,
        "pimc_version": __version__,
        "axes": list(spec.axes),
        "pareto": [row["index"] for row in rows if row["pareto"]],
        "points": list(rows),
    }
    return json.dumps(data, indent=2) + "\n"


def to_markdown(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str:
    """A table of the swept settings and headline figures; `*` marks the Pareto front."""
    axes = list(spec.axes)
    figures = [(k, h) for k, h in MARKDOWN_FIGURES if any(r["metrics"].get(k) is not None for r in rows)]
    lines = [
        "| # | " + " | ".join([*axes, "status", *(h for _, h in figures), "Pareto"]) + " |",
        "|---|" + "---|" * (len(axes) + 1) + "---:|" * len(figures) + ":---:|",
    ]
    for row in rows:
        status = row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}"
        cells = [*(_cell(row["params"].get(a)) for a in axes), status,
                 *(_fmt(row["metrics"].get(k)) for k, _ in figures), "*" if row["pareto"] else ""]
        lines.append(f"| {row['index']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


MARKDOWN_FIGURES = (("tokens_per_s", "tokens/s"), ("joules_per_token", "J/token"), ("ttft_s", "TTFT s"),
                    ("kernel_latency_s", "kernel s"), ("kernel_energy_j", "kernel J"))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"

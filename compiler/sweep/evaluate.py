"""One point's evaluation, as run by a worker: `pimc.estimate`, reduced to a small picklable record.

A `PimcError` (infeasible capacity, a device that cannot run the model ...) is a result of the point:
status "error" with its message. Anything else is a pimc bug: status "crash", never stored in the
journal, so a re-run tries the point again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pimc import __version__
from pimc.errors import PimcError
from pimc.targets import Target

PHASES = ("prefill", "decode", "kernel")
PHASE_FIELDS = ("latency_s", "energy_j", "offchip_bytes")
HEADLINE = ("ttft_s", "tokens_per_s", "joules_per_token")


@dataclass(frozen=True)
class Job:
    """What a worker needs: no file paths except the model's (targets travel resolved)."""

    key: str
    model: str
    target: Target
    options: dict[str, Any]


def evaluate(job: Job) -> dict[str, Any]:
    """The journal record of one point (key, status, error, metrics, devices, wall time)."""
    import pimc

    started = time.perf_counter()
    record: dict[str, Any] = {"key": job.key, "pimc_version": __version__}
    try:
        report = pimc.estimate(job.model, job.target, **job.options)
    except PimcError as e:
        record.update(status="error", error=_one_line(e))
    except Exception as e:  # a bug in pimc: keep the sweep going, report it, retry next run
        record.update(status="crash", error=f"{type(e).__name__}: {_one_line(e)}")
    else:
        record.update(status="ok", error="", **summarize(report.data))
    record["wall_s"] = time.perf_counter() - started
    return record


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """The deterministic figures of a `pimc.report/1` report a sweep keeps (no wall times)."""
    metrics = {name: data.get(name) for name in HEADLINE}
    for phase in PHASES:
        for field in PHASE_FIELDS:
            metrics[f"{phase}_{field}"] = data[phase][field] if phase in data else None
    schedule = data.get("schedule", {})
    metrics.update(schedule_solver=schedule.get("solver"), schedule_status=schedule.get("status"),
                   schedule_gap=schedule.get("gap"))
    devices = {name: {k: d[k] for k in ("kind", "busy_s", "energy_j")} for name, d in data.get("devices", {}).items()}
    return {"metrics": metrics, "devices": devices}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split("\n")[0].split()) or type(error).__name__

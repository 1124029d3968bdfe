"""The report (schema `pimc.report/1`, keys fixed by DESIGN.md) built from timeline events.

A static report prices one prefill and one decode step from the schedule in the program; a run
report sums what the simulator executed. Both go through `build_report`, so keys never drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pimc.timeline import Event, span_s

SCHEMA = "pimc.report/1"


@dataclass(frozen=True)
class PhaseStats:
    latency_s: float
    energy_j: float
    offchip_bytes: float

    @classmethod
    def of(cls, events: list[Event]) -> PhaseStats:
        return cls(span_s(events), sum(e.energy_j for e in events), sum(e.offchip_bytes for e in events))


def device_usage(events: Iterable[Event], kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    usage = {name: {"kind": kind, "busy_s": 0.0, "energy_j": 0.0, "ops": 0} for name, kind in sorted(kinds.items())}
    for e in events:
        u = usage[e.device]
        u["busy_s"] += e.end_s - e.start_s
        u["energy_j"] += e.energy_j
        u["ops"] += 1
    return usage


def build_report(
    *,
    model: str,
    target: str,
    compile_s: float | None,
    prompt_tokens: int,
    context: int,
    prefill: PhaseStats,
    decode: PhaseStats,
    devices: dict[str, dict[str, Any]],
    schedule: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    report = {
        "schema": SCHEMA,
        "model": model,
        "target": target,
        "compile_s": compile_s,
        "prefill": {"tokens": prompt_tokens, **_stats(prefill)},
        "decode": {"context": context, **_stats(decode)},
        "ttft_s": prefill.latency_s,
        "tokens_per_s": 1.0 / decode.latency_s if decode.latency_s > 0 else None,
        "joules_per_token": decode.energy_j,
        "devices": devices,
        "schedule": schedule,
    }
    report.update(extra or {})
    return report


def build_kernel_report(
    *,
    model: str,
    target: str,
    compile_s: float | None,
    kernel: PhaseStats,
    devices: dict[str, dict[str, Any]],
    schedule: dict[str, Any],
) -> dict[str, Any]:
    """The report of a kernel model (`gemv:MxK`, `gemm:MxKxN`): `kernel` instead of prefill/decode."""
    return {
        "schema": SCHEMA,
        "model": model,
        "target": target,
        "compile_s": compile_s,
        "kernel": _stats(kernel),
        "devices": devices,
        "schedule": schedule,
    }


def _stats(stats: PhaseStats) -> dict[str, float]:
    return {"latency_s": stats.latency_s, "energy_j": stats.energy_j, "offchip_bytes": stats.offchip_bytes}


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(value) >= scale or scale == 1e-9:
            return f"{value / scale:.3f} {prefix}{unit}"
    return f"{value} {unit}"


def to_markdown(report: dict[str, Any]) -> str:
    """A short human summary (the demo and `pimc run` print this)."""
    if "kernel" in report and "prefill" not in report:
        return _kernel_markdown(report)
    p, d = report["prefill"], report["decode"]
    tps = report["tokens_per_s"]
    lines = [
        f"# pimc report: {report['model']} on {report['target']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| prefill ({p['tokens']} tokens) | {_si(p['latency_s'], 's')}, {_si(p['energy_j'], 'J')}, {p['offchip_bytes'] / 1e6:.3f} MB off-chip |",
        f"| decode (context {d['context']}) | {_si(d['latency_s'], 's')}/token, {_si(d['energy_j'], 'J')}/token, {d['offchip_bytes'] / 1e6:.3f} MB/token |",
        f"| time to first token | {_si(report['ttft_s'], 's')} |",
        f"| tokens/s | {tps:.2f} |" if tps else "| tokens/s | n/a |",
        f"| J/token | {_si(report['joules_per_token'], 'J')} |",
        f"| schedule | {report['schedule']['solver']} ({report['schedule']['status']}) |",
    ]
    if "run" in report:
        r = report["run"]
        lines.append(f"| run | {r['generated_tokens']} tokens in {_si(r['latency_s'], 's')}, {_si(r['energy_j'], 'J')} |")
    lines += ["", "| device | kind | busy | energy | ops |", "|---|---|---|---|---|"]
    for name, u in report["devices"].items():
        lines.append(f"| {name} | {u['kind']} | {_si(u['busy_s'], 's')} | {_si(u['energy_j'], 'J')} | {u['ops']} |")
    return "\n".join(lines) + "\n"


def _kernel_markdown(report: dict[str, Any]) -> str:
    k = report["kernel"]
    lines = [
        f"# pimc report: {report['model']} on {report['target']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| kernel | {_si(k['latency_s'], 's')}, {_si(k['energy_j'], 'J')}, {k['offchip_bytes'] / 1e6:.3f} MB off-chip |",
        f"| schedule | {report['schedule']['solver']} ({report['schedule']['status']}) |",
        "",
        "| device | kind | busy | energy | ops |",
        "|---|---|---|---|---|",
    ]
    for name, u in report["devices"].items():
        lines.append(f"| {name} | {u['kind']} | {_si(u['busy_s'], 's')} | {_si(u['energy_j'], 'J')} | {u['ops']} |")
    return "\n".join(lines) + "\n"

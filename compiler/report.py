"""The report (schema `pimc.report/1`, keys fixed by DESIGN.md) built from timeline events.

A static report prices one prefill and one decode step from the schedule in the program; a run
report sums what the simulator executed. Both go through `build_report`, so keys never drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pimc.timeline import Event
from pimc.transfers import TransferEvent, offchip_transfer_bytes

SCHEMA = "pimc.report/1"


@dataclass(frozen=True)
class PhaseStats:
    latency_s: float
    energy_j: float
    offchip_bytes: float
    """The ops' own off-chip bytes plus the transfers with an off-chip end (`pimc.transfers.offchip_transfer_bytes`)."""
    ops_offchip_bytes: float | None = None
    """The ops' own part of `offchip_bytes`: what their cost models count."""

    @classmethod
    def of(cls, events: list[Event], transfers: Iterable[TransferEvent] = ()) -> PhaseStats:
        """Latency: the span of the ops and the transfers (a scratchpad's first loads come before
        its first op); energy: the ops' and the links' (each transfer's bytes times its link's
        energy per byte); off-chip bytes: what the ops' cost models count plus every transfer with an
        off-chip end (loads, spills, reloads, writebacks, copies between off-chip memories)."""
        transfers = list(transfers)
        starts = [e.start_s for e in events] + [t.start_s for t in transfers]
        ends = [e.end_s for e in events] + [t.end_s for t in transfers]
        energy = sum(e.energy_j for e in events) + sum(t.energy_j for t in transfers)
        ops = sum(e.offchip_bytes for e in events)
        return cls(max(ends, default=0.0) - min(starts, default=0.0), energy, ops + offchip_transfer_bytes(transfers), ops)


def device_usage(events: Iterable[Event], kinds: dict[str, str],
                 transfer_offchip: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Busy time, energy, ops and off-chip bytes per device; `transfer_offchip` ({device: bytes},
    `pimc.transfers.offchip_transfer_bytes_by_device`) adds the edge-crossing transfers charged to it."""
    usage = {name: {"kind": kind, "busy_s": 0.0, "energy_j": 0.0, "ops": 0, "offchip_bytes": 0.0}
             for name, kind in sorted(kinds.items())}
    for e in events:
        u = usage[e.device]
        u["busy_s"] += e.end_s - e.start_s
        u["energy_j"] += e.energy_j
        u["ops"] += 1
        u["offchip_bytes"] += e.offchip_bytes
    for u in usage.values():
        u["ops_offchip_bytes"] = u["offchip_bytes"]
    for name, nbytes in (transfer_offchip or {}).items():
        usage[name]["offchip_bytes"] += nbytes
    return usage


TOP_OPS = 10


def top_ops(placement: dict[str, list[dict[str, Any]]], count: int = TOP_OPS) -> list[dict[str, Any]]:
    """The `count` longest ops of all functions (one call each, as scheduled), longest first."""
    rows = [(function, r) for function, fn_rows in placement.items() for r in fn_rows]
    rows.sort(key=lambda fr: (-fr[1]["latency_s"], fr[0], fr[1]["start_s"], fr[1]["op"]))
    return [
        {"function": function, "op": r["op"], "kind": r["kind"], "device": r["device"],
         **({"weights": r["weights"]} if "weights" in r else {}),
         "latency_s": r["latency_s"], "energy_j": r["energy_j"], "offchip_bytes": r["offchip_bytes"]}
        for function, r in rows[:count]
    ]


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
    placement: dict[str, list[dict[str, Any]]] | None = None,
    extra: dict[str, Any] | None = None,
    links: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`links` ({name: usage}, `pimc.transfers.link_usage`) sits beside `devices`: the phases'
    `energy_j` is the devices' plus the links'."""
    figures = {
        "prefill": {"tokens": prompt_tokens, **_stats(prefill)},
        "decode": {"context": context, **_stats(decode)},
        "ttft_s": prefill.latency_s,
        "tokens_per_s": 1.0 / decode.latency_s if decode.latency_s > 0 else None,
        "joules_per_token": decode.energy_j,
    }
    return {**_report(model, target, compile_s, figures, devices, links, schedule, placement), **(extra or {})}


def build_kernel_report(
    *,
    model: str,
    target: str,
    compile_s: float | None,
    kernel: PhaseStats,
    devices: dict[str, dict[str, Any]],
    schedule: dict[str, Any],
    placement: dict[str, list[dict[str, Any]]] | None = None,
    links: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report of a kernel model (`gemv:MxK`, `gemm:MxKxN`): `kernel` instead of prefill/decode."""
    return _report(model, target, compile_s, {"kernel": _stats(kernel)}, devices, links, schedule, placement)


def _report(model: str, target: str, compile_s: float | None, figures: dict[str, Any], devices: dict[str, dict[str, Any]],
            links: dict[str, dict[str, Any]] | None, schedule: dict[str, Any],
            placement: dict[str, list[dict[str, Any]]] | None) -> dict[str, Any]:
    """The keys every report has, in the schema's order, around its `figures` (phases or kernel)."""
    report = {
        "schema": SCHEMA,
        "model": model,
        "target": target,
        "compile_s": compile_s,
        **figures,
        "devices": devices,
        **({"links": links} if links is not None else {}),
        "schedule": schedule,
    }
    if placement is not None:
        report["placement"] = placement
        report["top_ops"] = top_ops(placement)
    return report


def _stats(stats: PhaseStats) -> dict[str, float]:
    out = {"latency_s": stats.latency_s, "energy_j": stats.energy_j, "offchip_bytes": stats.offchip_bytes}
    if stats.ops_offchip_bytes is not None:
        out["ops_offchip_bytes"] = stats.ops_offchip_bytes
    return out


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
        f"| off-chip traffic | {_mb(p['offchip_bytes'])} prefill{_offchip_split(p)}, "
        f"{_mb(d['offchip_bytes'])}/token decode{_offchip_split(d)} |",
        _schedule_row(report["schedule"]),
    ]
    if "run" in report:
        r = report["run"]
        lines.append(f"| run | {r['generated_tokens']} tokens in {_si(r['latency_s'], 's')}, {_si(r['energy_j'], 'J')}, "
                     f"{_mb(r['offchip_bytes'])} off-chip{_offchip_split(r)} |")
    return "\n".join(lines + _devices_markdown(report) + _top_ops_markdown(report) + _placement_markdown(report)) + "\n"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.3f} MB"


def _offchip_split(stats: dict[str, Any]) -> str:
    """' (X by ops + Y by transfers)' where transfers with an off-chip end add to the ops' own bytes."""
    ops = stats.get("ops_offchip_bytes")
    if ops is None or ops == stats["offchip_bytes"]:
        return ""
    return f" ({_mb(ops)} by ops + {_mb(stats['offchip_bytes'] - ops)} by transfers)"


def _schedule_row(schedule: dict[str, Any]) -> str:
    """Solver, status, objective in its unit (the sum over phases), gap and bound when proven."""
    kinds = {p.get("objective_kind", "makespan") for p in schedule.get("phases", {}).values()} or {"makespan"}
    kind = kinds.pop() if len(kinds) == 1 else "objective"
    show = {"makespan": lambda v: _si(v, "s"), "energy": lambda v: _si(v, "J"), "offchip": _mb}.get(kind, lambda v: f"{v:.6g}")
    gap, bound = schedule.get("gap"), schedule.get("bound")
    proof = f"gap {gap:.2%} (bound {show(bound)})" if gap is not None and bound is not None else "gap n/a (no bound)"
    return (f"| schedule | {schedule['solver']} solver, status {schedule['status']}, "
            f"{kind} {show(schedule['objective'])}, {proof} |")


def _devices_markdown(report: dict[str, Any]) -> list[str]:
    scope = "the run" if "run" in report else "the kernel" if "kernel" in report else "one prefill + one decode step"
    title = "Devices and links" if report.get("links") else "Devices"
    lines = ["", f"## {title} ({scope})", "", "| device | kind | busy | energy | off-chip | ops |", "|---|---|---|---|---|---|"]
    for name, u in report["devices"].items():
        offchip = _mb(u["offchip_bytes"]) if "offchip_bytes" in u else "n/a"
        lines.append(f"| {name} | {u['kind']} | {_si(u['busy_s'], 's')} | {_si(u['energy_j'], 'J')} | {offchip} | {u['ops']} |")
    for name, u in report.get("links", {}).items():
        lines.append(f"| {name} | link {' ↔ '.join(u['endpoints'])} | {_si(u['busy_s'], 's')} | {_si(u['energy_j'], 'J')} | "
                     f"{_mb(u['bytes'])} moved | {u['transfers']} transfers |")
    return lines


def _top_ops_markdown(report: dict[str, Any]) -> list[str]:
    top = report.get("top_ops")
    if not top:
        return []
    lines = ["", f"## Top {len(top)} ops by time (one call, as scheduled)", "",
             "| phase | op | kind | device | time | energy | off-chip |", "|---|---|---|---|---|---|---|"]
    for t in top:
        name = f"{t['op']} ({', '.join(t['weights'])})" if t.get("weights") else t["op"]
        lines.append(f"| {t['function']} | {name} | {t['kind']} | {t['device']} | {_si(t['latency_s'], 's')} | "
                     f"{_si(t['energy_j'], 'J')} | {_mb(t['offchip_bytes'])} |")
    return lines


def placement_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one function grouped by (op kind, device): count, summed cost, the mean latency the
    same ops would have had on each other capable device, and the most common reason."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        kind = f"{r['kind']} ({r['fused']['pattern']})" if "fused" in r else r["kind"]
        if "weight_format" in r:  # a CPU reading the weights in its own format, e.g. llama.cpp's Q2_K
            kind += f" [{r['weight_format']}]"
        g = groups.setdefault((kind, r["device"]), {
            "kind": kind, "device": r["device"], "ops": 0, "latency_s": 0.0, "energy_j": 0.0,
            "offchip_bytes": 0.0, "elsewhere_s": {}, "why": {},
        })
        g["ops"] += 1
        for key in ("latency_s", "energy_j", "offchip_bytes"):
            g[key] += r[key]
        for d, c in r["candidates"].items():
            if d != r["device"]:
                g["elsewhere_s"][d] = g["elsewhere_s"].get(d, 0.0) + c["latency_s"]
        for reason in [r["why"], *(f"not on {d}: {why}" for d, why in r.get("ruled_out", {}).items())]:
            g["why"][reason] = g["why"].get(reason, 0) + 1
    return [groups[k] for k in sorted(groups)]


def _placement_markdown(report: dict[str, Any]) -> list[str]:
    placement = report.get("placement")
    if not placement:
        return []
    lines = ["", "## Placement: which ops went where and why", ""]
    for function, rows in placement.items():
        lines += [f"### {function} ({len(rows)} ops)", "",
                  "| op | device | ops | time | energy | off-chip | same ops elsewhere | why |", "|---|---|---|---|---|---|---|---|"]
        for g in placement_groups(rows):
            elsewhere = ", ".join(f"{d} {_si(t, 's')}" for d, t in sorted(g["elsewhere_s"].items())) or "-"
            why = "; ".join(f"{reason} (x{n})" if n < g["ops"] else reason
                            for reason, n in sorted(g["why"].items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"| {g['kind']} | {g['device']} | {g['ops']} | {_si(g['latency_s'], 's')} | "
                         f"{_si(g['energy_j'], 'J')} | {g['offchip_bytes'] / 1e6:.3f} MB | {elsewhere} | {why} |")
        lines.append("")
    return lines[:-1]


def _kernel_markdown(report: dict[str, Any]) -> str:
    k = report["kernel"]
    lines = [
        f"# pimc report: {report['model']} on {report['target']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| kernel | {_si(k['latency_s'], 's')}, {_si(k['energy_j'], 'J')}, {k['offchip_bytes'] / 1e6:.3f} MB off-chip"
        f"{_offchip_split(k)} |",
        _schedule_row(report["schedule"]),
    ]
    return "\n".join(lines + _devices_markdown(report) + _top_ops_markdown(report) + _placement_markdown(report)) + "\n"

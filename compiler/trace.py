"""Chrome / Perfetto trace of a program: what ran where and when, what moved, what memory held.

The Trace Event Format (JSON, timestamps in microseconds) opens in ui.perfetto.dev and
chrome://tracing. Three processes group the tracks: "devices" (one thread per device, an op per
slice), "links" (one thread per src→dst memory pair, a transfer per slice, named by its role: load,
spill, reload, writeback or transfer; see `pimc.transfers`) and "memories" (a counter per memory:
bytes resident over time). Device slices come from the timeline events; links and memories from the checked
schedule of each phase, placed at the time each call of that phase began.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pimc.mapping.schedule import Schedule
from pimc.timeline import Event, call_offsets
from pimc.targets.schema import OFFCHIP_KINDS
from pimc.transfers import transfer_roles

__all__ = ["build_trace", "trace_json"]

PIDS = {"devices": 1, "links": 2, "memories": 3}
US = 1e6


def _us(seconds: float) -> float:
    """Microseconds, rounded to the picosecond so the file is readable and byte-stable."""
    return round(seconds * US, 6)


def _meta(pid: int, tid: int | None, name: str, value: str) -> dict[str, Any]:
    event = {"ph": "M", "pid": pid, "name": name, "args": {"name": value}}
    if tid is not None:
        event["tid"] = tid
    return event


def build_trace(events: Iterable[Event], schedules: Mapping[str, Schedule], memory_kinds: Mapping[str, str],
                title: str = "pimc") -> dict[str, Any]:
    """The trace as a JSON-ready dict. `memory_kinds` maps memory name -> kind (dram, sram ...)."""
    events = sorted(events, key=lambda e: (e.start_s, e.device, e.op))
    devices = sorted({e.device for e in events})
    links = sorted({(t.src_memory, t.dst_memory) for s in schedules.values() for t in s.transfers})
    memories = sorted({r.memory for s in schedules.values() for r in s.residency if r.size_bytes is not None})
    offchip = {m for m, kind in memory_kinds.items() if kind in OFFCHIP_KINDS}

    out: list[dict[str, Any]] = [_meta(pid, None, "process_name", name) for name, pid in PIDS.items()]
    out += [_meta(PIDS["devices"], i, "thread_name", d) for i, d in enumerate(devices)]
    out += [_meta(PIDS["links"], i, "thread_name", f"{a} → {b}") for i, (a, b) in enumerate(links)]
    device_tid = {d: i for i, d in enumerate(devices)}
    link_tid = {link: i for i, link in enumerate(links)}

    for e in events:
        out.append({
            "ph": "X", "pid": PIDS["devices"], "tid": device_tid[e.device], "name": e.op, "cat": e.phase,
            "ts": _us(e.start_s), "dur": _us(e.end_s - e.start_s),
            "args": {"phase": e.phase, "step": e.step, "energy_j": e.energy_j, "offchip_bytes": e.offchip_bytes},
        })

    occupancy: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for phase, offset in call_offsets(events, schedules):
        schedule = schedules.get(phase)
        if schedule is None:
            continue
        for t, kind in zip(schedule.transfers, transfer_roles(schedule, offchip)):
            out.append({
                "ph": "X", "pid": PIDS["links"], "tid": link_tid[(t.src_memory, t.dst_memory)],
                "name": f"{kind} {t.tensor}", "cat": kind, "ts": _us(offset + t.start_s),
                "dur": _us(t.end_s - t.start_s), "args": {"phase": phase, "bytes": t.bytes},
            })
        for r in (r for r in schedule.residency if r.size_bytes is not None):
            occupancy[r.memory] += [(offset + r.start_s, r.size_bytes), (offset + r.end_s, -r.size_bytes)]
    for memory in memories:
        level = 0
        deltas = sorted(occupancy[memory], key=lambda d: (d[0], d[1]))  # frees before allocations at a tie
        for i, (time_s, delta) in enumerate(deltas):
            level += delta
            if i + 1 < len(deltas) and deltas[i + 1][0] == time_s:
                continue  # one counter sample per instant
            out.append({"ph": "C", "pid": PIDS["memories"], "name": memory, "ts": _us(time_s),
                        "args": {"bytes": level}})
    return {"traceEvents": out, "displayTimeUnit": "ns", "otherData": {"title": title}}


def trace_json(trace: dict[str, Any]) -> str:
    """Compact, byte-stable JSON text of a trace."""
    return json.dumps(trace, separators=(",", ":"), sort_keys=True) + "\n"

"""Chrome / Perfetto trace of a program: what ran where and when, what moved, what memory held.

The Trace Event Format (JSON, timestamps in microseconds) opens in ui.perfetto.dev and
chrome://tracing. Three processes group the tracks: "devices" (one thread per device, an op per
slice), "links" (one thread per link and direction, a transfer per slice, named by its role: load,
spill, reload, writeback or transfer, with its link, bytes and energy; see `pimc.transfers`) and
"memories" (a counter per memory: bytes resident over time). Device slices come from the timeline
events, link slices from the same `transfer_events` the report and plots price, and memory counters
from the checked schedule of each phase, placed at the time each call of that phase began.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pimc.mapping.schedule import Schedule
from pimc.timeline import Event, call_offsets
from pimc.transfers import TransferEvent

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


def build_trace(events: Iterable[Event], schedules: Mapping[str, Schedule], transfers: Iterable[TransferEvent],
                title: str = "pimc") -> dict[str, Any]:
    """The trace as a JSON-ready dict. `transfers`: the run's `pimc.transfers.transfer_events`."""
    events = sorted(events, key=lambda e: (e.start_s, e.device, e.op))
    transfers = list(transfers)
    devices = sorted({e.device for e in events})
    links = sorted({(t.link, t.src_memory, t.dst_memory) for t in transfers})
    memories = sorted({r.memory for s in schedules.values() for r in s.residency if r.size_bytes is not None})

    out: list[dict[str, Any]] = [_meta(pid, None, "process_name", name) for name, pid in PIDS.items()]
    out += [_meta(PIDS["devices"], i, "thread_name", d) for i, d in enumerate(devices)]
    out += [_meta(PIDS["links"], i, "thread_name", f"{link}: {a} → {b}") for i, (link, a, b) in enumerate(links)]
    device_tid = {d: i for i, d in enumerate(devices)}
    link_tid = {link: i for i, link in enumerate(links)}

    for e in events:
        out.append({
            "ph": "X", "pid": PIDS["devices"], "tid": device_tid[e.device], "name": e.op, "cat": e.phase,
            "ts": _us(e.start_s), "dur": _us(e.end_s - e.start_s),
            "args": {"phase": e.phase, "step": e.step, "energy_j": e.energy_j, "offchip_bytes": e.offchip_bytes},
        })
    for t in transfers:
        out.append({
            "ph": "X", "pid": PIDS["links"], "tid": link_tid[(t.link, t.src_memory, t.dst_memory)],
            "name": f"{t.role} {t.tensor}", "cat": t.role, "ts": _us(t.start_s), "dur": _us(t.end_s - t.start_s),
            "args": {"phase": t.phase, "step": t.step, "link": t.link, "src_memory": t.src_memory,
                     "dst_memory": t.dst_memory, "bytes": t.bytes, "energy_j": t.energy_j},
        })

    occupancy: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for phase, offset in call_offsets(events, schedules):
        schedule = schedules.get(phase)
        if schedule is None:
            continue
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

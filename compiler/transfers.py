"""Link transfers of a program: each phase's scheduled transfers, once per call, on the target's links.

The mapper prices a transfer at its bytes times the link's energy per byte (`LinkCost.energy_j`);
reports, traces and plots take the same figure from here, so their totals agree with what was
optimized. Ops' own energy stays on the device events (`pimc.timeline`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pimc.mapping.schedule import Schedule
from pimc.targets import Target
from pimc.timeline import Event, calls

__all__ = ["TransferEvent", "transfer_events", "link_usage"]


@dataclass(frozen=True)
class TransferEvent:
    """One tensor moved over one link during one call of a phase (seconds from the start of the run)."""

    phase: str
    step: int
    link: str
    tensor: str
    src_memory: str
    dst_memory: str
    start_s: float
    end_s: float
    bytes: int
    energy_j: float


def transfer_events(events: Iterable[Event], schedules: Mapping[str, Schedule], target: Target) -> list[TransferEvent]:
    """The transfers of every call the device `events` made, placed where each call began, in time order."""
    links = target.memory_links()
    out = []
    for phase, step, offset in calls(list(events), schedules):
        schedule = schedules.get(phase)
        for t in schedule.transfers if schedule else ():
            link = links.get((t.src_memory, t.dst_memory))
            if link is None:  # the checker admits no transfer without a link
                raise ValueError(f"@{phase}: transfer of {t.tensor} {t.src_memory} -> {t.dst_memory} has no link in "
                                 f"target {target.name!r}")
            out.append(TransferEvent(phase, step, link.name, t.tensor, t.src_memory, t.dst_memory, offset + t.start_s,
                                     offset + t.end_s, t.bytes, t.bytes * link.energy_pj_per_byte * 1e-12))
    return sorted(out, key=lambda t: (t.start_s, t.link, t.tensor))


def link_usage(transfers: Iterable[TransferEvent], target: Target) -> dict[str, dict[str, Any]]:
    """{link: endpoints, transfers, bytes moved, busy time, energy} for every link of the target."""
    usage = {link.name: {"endpoints": list(link.endpoints), "transfers": 0, "bytes": 0, "busy_s": 0.0, "energy_j": 0.0}
             for link in sorted(target.links, key=lambda link: link.name)}
    for t in transfers:
        u = usage[t.link]
        u["transfers"] += 1
        u["bytes"] += t.bytes
        u["busy_s"] += t.end_s - t.start_s
        u["energy_j"] += t.energy_j
    return usage

"""Link transfers of a program: each phase's scheduled transfers, once per call, on the target's links.

The mapper prices a transfer at its bytes times the link's energy per byte (`LinkCost.energy_j`);
reports, traces and plots take the same figure from here, so their totals agree with what was
optimized. Ops' own energy stays on the device events (`pimc.timeline`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pimc.mapping.from_ir import link_costs
from pimc.mapping.schedule import Schedule
from pimc.targets import Target
from pimc.timeline import Event, calls

__all__ = ["ROLES", "TransferEvent", "transfer_events", "transfer_roles", "link_usage",
           "offchip_transfer_bytes", "offchip_transfer_bytes_by_device"]

ROLES = ("load", "spill", "reload", "writeback", "transfer")
"""What a transfer does: see `transfer_roles`."""


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
    role: str = "transfer"
    """load, spill, reload, writeback or transfer (`transfer_roles`)."""
    offchip: bool = False
    """Whether either end is an off-chip memory (`Transfer.crosses_offchip`, the rule the mapper's
    `Schedule.offchip_bytes` counts by): then its bytes are off-chip traffic that no op's cost counts."""


def transfer_roles(schedule: Schedule, offchip: set[str] | frozenset[str]) -> list[str]:
    """The role of each of `schedule.transfers`, in their order, within one call:
    load (off-chip -> on-chip of a tensor not written on chip before: a weight, an input), spill
    (on-chip -> off-chip of a tensor read back on chip later), reload (that read back), writeback
    (on-chip -> off-chip, never read back: an output, a result evicted for good) and transfer
    (between two off-chip or two on-chip memories)."""
    order = sorted(range(len(schedule.transfers)), key=lambda i: (schedule.transfers[i].start_s, i))
    roles = ["transfer"] * len(schedule.transfers)
    written: dict[str, int] = {}  # tensor -> index of its latest on-chip -> off-chip transfer
    for i in order:
        t = schedule.transfers[i]
        if t.src_memory not in offchip and t.dst_memory in offchip:
            roles[i] = "writeback"
            written[t.tensor] = i
        elif t.src_memory in offchip and t.dst_memory not in offchip:
            if t.tensor in written:
                roles[i], roles[written[t.tensor]] = "reload", "spill"
            else:
                roles[i] = "load"
    return roles


def transfer_events(events: Iterable[Event], schedules: Mapping[str, Schedule], target: Target) -> list[TransferEvent]:
    """The transfers of every call the device `events` made, placed where each call began, in time order."""
    links = target.memory_links()
    offchip = target.offchip_memories()
    costs = link_costs(target)
    roles = {phase: transfer_roles(schedule, offchip) for phase, schedule in schedules.items()}
    out = []
    for phase, step, offset in calls(list(events), schedules):
        schedule = schedules.get(phase)
        for t, role in zip(schedule.transfers, roles[phase]) if schedule else ():
            link = links.get((t.src_memory, t.dst_memory))
            if link is None:  # the checker admits no transfer without a link
                raise ValueError(f"@{phase}: transfer of {t.tensor} {t.src_memory} -> {t.dst_memory} has no link in "
                                 f"target {target.name!r}")
            out.append(TransferEvent(phase, step, link.name, t.tensor, t.src_memory, t.dst_memory, offset + t.start_s,
                                     offset + t.end_s, t.bytes, costs[(t.src_memory, t.dst_memory)].energy_j(t.bytes), role,
                                     t.crosses_offchip(offchip)))
    return sorted(out, key=lambda t: (t.start_s, t.link, t.tensor))


def offchip_transfer_bytes(transfers: Iterable[TransferEvent]) -> int:
    """Bytes of the transfers with an off-chip end (loads, spills, reloads, writebacks, and copies
    between two off-chip memories), counted once each: flagged by the mapper's own rule
    (`Transfer.crosses_offchip`), so this is the transfer part of `Schedule.offchip_bytes`."""
    return sum(t.bytes for t in transfers if t.offchip)


def offchip_transfer_bytes_by_device(transfers: Iterable[TransferEvent], target: Target) -> dict[str, float]:
    """`offchip_transfer_bytes` charged to the device that computes from each transfer's on-chip end
    (its destination when both ends are off chip: the memory it was copied for), when that memory
    has exactly one device. A memory several devices compute from (edge-soc's DDR4) does not say
    which of them the transfer served, so its transfers are charged to none: they stay in the
    phase totals and on their links (devices with none are absent)."""
    offchip = target.offchip_memories()
    users: dict[str, list[str]] = {}
    for d in target.devices:
        users.setdefault(d.memory, []).append(d.name)
    out: dict[str, float] = {}
    for t in transfers:
        if not t.offchip:
            continue
        memory = t.src_memory if t.dst_memory in offchip and t.src_memory not in offchip else t.dst_memory
        devices = users.get(memory, [])
        if len(devices) == 1:
            out[devices[0]] = out.get(devices[0], 0.0) + t.bytes
    return out


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

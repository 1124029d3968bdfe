"""A target machine: devices, the memories they compute from, and the links between them.

Every number carries its unit in its name. Device fields are per kind (see `kinds.py`); the
cross-references (device -> memory, link -> endpoints) and name uniqueness are checked here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pimc.errors import TargetError
from pimc.targets.device import NAME_PATTERN, DeviceBase, StrictModel
from pimc.targets.kinds import Device


OFFCHIP_KINDS = ("dram", "lpddr", "hbm")
"""Memory kinds outside the chip: traffic to them is off-chip traffic (an `sram` is on chip)."""


class Memory(StrictModel):
    """A memory that devices read operands from (DRAM module, on-chip SRAM ...)."""

    name: str = Field(pattern=NAME_PATTERN, description="unique name within the target")
    kind: Literal["dram", "lpddr", "sram", "hbm"] = Field(description="memory technology")
    capacity_bytes: int = Field(gt=0, description="usable capacity, bytes")
    bandwidth_gb_per_s: float = Field(gt=0, description="peak bandwidth, 1e9 bytes per second")
    energy_pj_per_byte: float = Field(ge=0, description="access energy per byte moved, pJ")
    latency_ns: float = Field(default=0.0, ge=0, description="access latency, ns")
    description: str | None = Field(default=None, description="free text, e.g. the part number")


class Link(StrictModel):
    """A point-to-point connection between two devices or memories."""

    name: str = Field(pattern=NAME_PATTERN, description="unique name within the target")
    endpoints: list[str] = Field(
        min_length=2, max_length=2, description="the two device or memory names it connects"
    )
    bandwidth_gb_per_s: float = Field(gt=0, description="peak bandwidth, 1e9 bytes per second")
    latency_ns: float = Field(ge=0, description="per-transfer latency, ns")
    energy_pj_per_byte: float = Field(ge=0, description="transfer energy per byte, pJ")
    description: str | None = Field(default=None, description="free text")


class Target(StrictModel):
    """One machine: what `--target` names and every cost model reads its numbers from."""

    name: str = Field(description="target name; a preset's name equals its file stem")
    description: str = Field(default="", description="free text")
    devices: list[Device] = Field(min_length=1, description="compute devices")
    memories: list[Memory] = Field(min_length=1, description="memories")
    links: list[Link] = Field(default_factory=list, description="links between devices/memories")

    @model_validator(mode="after")
    def _check_references(self) -> Target:
        seen: dict[str, str] = {}
        for group, items in (("devices", self.devices), ("memories", self.memories),
                             ("links", self.links)):
            for i, item in enumerate(items):
                where = f"{group}[{i}]"
                if item.name in seen:
                    raise ValueError(f"{where}.name: duplicate name {item.name!r} "
                                     f"(already used by {seen[item.name]})")
                seen[item.name] = where
        memories = [m.name for m in self.memories]
        for i, d in enumerate(self.devices):
            if d.memory not in memories:
                raise ValueError(f"devices[{i}].memory: no memory named {d.memory!r} "
                                 f"(memories: {', '.join(memories)})")
        ends = [d.name for d in self.devices] + memories
        for i, link in enumerate(self.links):
            for j, end in enumerate(link.endpoints):
                if end not in ends:
                    raise ValueError(f"links[{i}].endpoints[{j}]: no device or memory named "
                                     f"{end!r} (names: {', '.join(ends)})")
            if link.endpoints[0] == link.endpoints[1]:
                raise ValueError(f"links[{i}].endpoints: a link joins two different names, "
                                 f"got {link.endpoints[0]!r} twice")
        return self

    def device(self, name: str) -> DeviceBase:
        """The device called `name`."""
        for d in self.devices:
            if d.name == name:
                return d
        raise TargetError(f"target {self.name!r} has no device {name!r} "
                          f"(devices: {', '.join(d.name for d in self.devices)})")

    def memory(self, name: str) -> Memory:
        """The memory called `name`."""
        for m in self.memories:
            if m.name == name:
                return m
        raise TargetError(f"target {self.name!r} has no memory {name!r} "
                          f"(memories: {', '.join(m.name for m in self.memories)})")

    def restricted_to(self, devices: list[str], name: str | None = None) -> Target:
        """The same machine with only `devices` (same numbers), the memories they use and the links
        between what is left: e.g. one device of a heterogeneous target, alone."""
        kept = [self.device(d) for d in devices]
        memories = [m for m in self.memories if any(d.memory == m.name for d in kept)]
        ends = {d.name for d in kept} | {m.name for m in memories}
        links = [link for link in self.links if set(link.endpoints) <= ends]
        return Target.model_validate({
            **self.model_dump(exclude={"devices", "memories", "links"}),
            "name": name or f"{self.name}[{'+'.join(devices)}]",
            "devices": [d.model_dump() for d in kept],
            "memories": [m.model_dump() for m in memories],
            "links": [link.model_dump() for link in links],
        })

    def memory_links(self) -> dict[tuple[str, str], Link]:
        """Each link under the pairs of memories it joins, both ways (a device endpoint stands for
        its memory; a link from a device to its own memory joins nothing). Transfers name memories."""
        names = {m.name for m in self.memories}
        out = {}
        for link in self.links:
            a, b = (e if e in names else self.device(e).memory for e in link.endpoints)
            if a != b:
                out[(a, b)] = out[(b, a)] = link
        return out

    def offchip_memories(self) -> frozenset[str]:
        """Names of the memories outside the chip (kinds in OFFCHIP_KINDS)."""
        return frozenset(m.name for m in self.memories if m.kind in OFFCHIP_KINDS)

    def memory_of(self, device: str | DeviceBase) -> Memory:
        """The memory a device (or device name) computes from."""
        d = self.device(device) if isinstance(device, str) else device
        return self.memory(d.memory)

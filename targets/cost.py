"""The result of every cost model: seconds, joules and off-chip bytes for one op on one device."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    latency_s: float
    """Wall time of the op on its device, seconds."""
    energy_j: float
    """Energy of the op including the device's static power over its latency, joules."""
    offchip_bytes: float
    """Bytes moved between the device and off-chip memory."""

    def __add__(self, other: Cost) -> Cost:
        """Sequential composition: latencies, energies and bytes add."""
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            self.latency_s + other.latency_s,
            self.energy_j + other.energy_j,
            self.offchip_bytes + other.offchip_bytes,
        )

    def __radd__(self, other: object) -> Cost:
        if other == 0:  # lets sum() start from 0
            return self
        return NotImplemented

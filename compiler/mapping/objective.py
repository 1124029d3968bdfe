"""What the mapper minimizes: makespan (latency), energy, off-chip bytes, or a weighted mix.

`--objective` takes `latency` (= `makespan`), `energy`, `offchip`, `mix` (equal weights) or
`mix:latency=W,energy=W,offchip=W`. A mix divides each term by the heuristic schedule's value, so
its objective is dimensionless (1.0 = as good as the heuristic on every term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pimc.errors import PimcError
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import Schedule

if TYPE_CHECKING:
    from pimc.mapping.cpsat_model import CpsatModel

KINDS = ("makespan", "energy", "offchip", "mix")
_ALIASES = {"latency": "makespan", "makespan": "makespan", "energy": "energy", "offchip": "offchip",
            "offchip_bytes": "offchip", "mix": "mix"}


@dataclass(frozen=True)
class Objective:
    kind: str = "makespan"
    w_latency: float = 1.0
    w_energy: float = 1.0
    w_offchip: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Objective:
        """`latency`, `makespan`, `energy`, `offchip`, `mix` or `mix:latency=1,energy=2,offchip=0`."""
        head, _, rest = text.strip().partition(":")
        kind = _ALIASES.get(head.strip().lower())
        if kind is None:
            raise PimcError(f"--objective '{text}': expected latency, energy, offchip or mix[:latency=W,energy=W,offchip=W]")
        if not rest:
            return cls(kind)
        if kind != "mix":
            raise PimcError(f"--objective '{text}': only mix takes weights")
        weights = {"latency": 0.0, "energy": 0.0, "offchip": 0.0}
        for part in rest.split(","):
            key, eq, val = part.partition("=")
            key = key.strip().lower()
            if key == "makespan":
                key = "latency"
            try:
                w = float(val)
            except ValueError:
                w = -1.0
            if key not in weights or not eq or w < 0:
                raise PimcError(f"--objective '{text}': weight '{part}' should be latency|energy|offchip=NUMBER >= 0")
            weights[key] = w
        if not any(weights.values()):
            raise PimcError(f"--objective '{text}': at least one weight must be > 0")
        return cls("mix", weights["latency"], weights["energy"], weights["offchip"])

    @property
    def name(self) -> str:
        if self.kind != "mix":
            return self.kind
        return f"mix:latency={self.w_latency:g},energy={self.w_energy:g},offchip={self.w_offchip:g}"

    def terms(self, problem: MappingProblem, schedule: Schedule) -> dict[str, float]:
        return {"makespan": schedule.makespan_s, "energy": schedule.energy_j(problem),
                "offchip": schedule.offchip_bytes(problem)}

    def value(self, problem: MappingProblem, schedule: Schedule, norm: dict[str, float] | None = None) -> float:
        """The exact objective of a schedule (seconds, joules, bytes, or the normalized mix)."""
        t = self.terms(problem, schedule)
        if self.kind != "mix":
            return t[self.kind]
        n = norm or {k: max(v, 1e-30) for k, v in t.items()}
        return (self.w_latency * t["makespan"] / n["makespan"] + self.w_energy * t["energy"] / n["energy"]
                + self.w_offchip * t["offchip"] / n["offchip"])

    def normalizers(self, problem: MappingProblem, hint: Schedule | None, model: CpsatModel | None = None) -> dict[str, float]:
        """Per-term scale of a mix: the heuristic's values, or the serial worst case without one."""
        if hint is not None:
            t = self.terms(problem, hint)
        else:
            t = {"makespan": sum(max(c.latency_s for (o, _), c in problem.costs.items() if o == op.name) for op in problem.ops),
                 "energy": sum(c.energy_j for c in problem.costs.values()),
                 "offchip": sum(c.offchip_bytes for c in problem.costs.values()) + sum(t.size_bytes for t in problem.tensors.values())}
        return {k: max(v, 1e-30) for k, v in t.items()}

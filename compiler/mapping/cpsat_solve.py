"""Solve a MappingProblem with CP-SAT: objective, warm start, limits, and the Schedule back.

Deterministic: a fixed seed, one worker by default (or `interleave_search`, CP-SAT's deterministic
parallel mode, when more are asked for) and a *deterministic* time limit (CP-SAT's work counter,
roughly seconds on this machine), so the same problem always gives the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ortools.sat.python import cp_model

from pimc import progress
from pimc.errors import ScheduleError
from collections.abc import Sequence

from pimc.mapping.cpsat_hint import add_hint, reload_counts, unit_schedule
from pimc.mapping.cpsat_model import CpsatModel
from pimc.mapping.cpsat_time import TimeScale
from pimc.mapping.objective import Objective
from pimc.mapping.problem import MappingProblem
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer, crosses_offchip

SEED = 1
ENERGY_RESOLUTION = 1_000_000
WALL_SAFETY_FACTOR = 60    # × the deterministic limit
WALL_SAFETY_EXTRA_S = 60.0
TRANSITIVE_PRECEDENCES_WORK = 3000
"""CP-SAT's work limit on transitive precedences between NoOverlap tasks (default 1e6). The
root-level bounds it derives from them (RootLevelLinear2Bounds) cost time its deterministic clock
does not count: a 48-op pimllm-rram decode took 17 s of CPU for 0.21 deterministic seconds at the
default and 0.55 s at 3000, same optimum. 1000 was as fast there but slowed a 22-op block's proof
from 0.04 s to 0.6 s; with no precedences at all (use_precedences_in_disjunctive_constraint off) 1 s."""


@dataclass(frozen=True)
class SolveOptions:
    objective: Objective = Objective()
    time_limit_s: float = 2.0
    """Deterministic time limit (CP-SAT work units, roughly seconds on a 2-core machine)."""
    workers: int = 1
    max_reloads: int = 1
    time_unit_s: float | None = None
    """Integer time resolution; None picks TimeScale.for_problem."""


def solve_cpsat(problem: MappingProblem, options: SolveOptions = SolveOptions(),
                warm: Sequence[tuple[str, str]] | None = None, warm_policy: str = "belady",
                reference: Schedule | None = None, offchip_floor: float | None = None) -> Schedule:
    """The best schedule CP-SAT finds within the limit (status OPTIMAL or FEASIBLE), or
    ScheduleError when it proves none exists or finds none in time. `warm` is a heuristic
    placement (op, device) in order, replayed with `warm_policy` eviction as the hint;
    `reference` (a heuristic schedule) normalizes a mix objective; `offchip_floor`, a known lower
    bound on the off-chip objective, is added as a constraint so a schedule meeting it is proven
    optimal at once."""
    model, terms, hint = build_model(problem, options, warm, warm_policy, reference, offchip_floor)
    scale = model.scale
    solver = cp_model.CpSolver()
    prm = solver.parameters
    prm.random_seed = SEED
    prm.num_workers = max(1, options.workers)
    if prm.num_workers > 1:
        prm.interleave_search = True
    prm.max_deterministic_time = options.time_limit_s
    prm.transitive_precedences_work_limit = TRANSITIVE_PRECEDENCES_WORK
    if hint is not None:
        # Presolve's symmetry breaking (identical devices) may fix variables against the hinted
        # solution, which then no longer counts as one: keep the symmetry for the search instead.
        prm.keep_symmetry_in_presolve = True
    # Wall-clock safety net only: the deterministic limit decides, so a loaded machine gives the
    # same schedule; the net is generous because hitting it would make the result timing-dependent.
    prm.max_time_in_seconds = WALL_SAFETY_FACTOR * options.time_limit_s + WALL_SAFETY_EXTRA_S
    with progress.solver(f"CP-SAT, {len(problem.ops)} ops") as live:
        watch = _Watch(live, scale.unit_s if terms.kind == "makespan" else None) if progress.enabled() else None
        status = solver.solve(model.m, watch)
    name = solver.status_name(status)
    if status == cp_model.INFEASIBLE:
        raise ScheduleError("CP-SAT proved the mapping infeasible (memories too small for the live "
                            "tensors, or a needed link is missing)")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise ScheduleError(f"CP-SAT found no schedule within {options.time_limit_s} s ({name})")
    # Hitting the net means the search stopped on the clock, not on deterministic work: say so.
    net_hit = solver.wall_time >= prm.max_time_in_seconds
    schedule = _extract(model, solver)
    value = options.objective.value(problem, schedule, terms.norm)
    bound = terms.bound_value(solver.best_objective_bound, scale, model)
    if status == cp_model.OPTIMAL and options.objective.kind != "mix":
        bound = min(bound, value) if bound is not None else value
    gap = None if bound is None else (0.0 if value <= 0 else max(0.0, (value - bound) / value))
    if status == cp_model.OPTIMAL and gap is not None and gap < 1e-6:
        gap = 0.0
    note = (f"CP-SAT stopped at the wall-clock safety net ({prm.max_time_in_seconds:.0f} s) before its "
            f"deterministic limit; this schedule may differ on a less loaded machine") if net_hit else ""
    return Schedule(slots=schedule.slots, residency=schedule.residency, transfers=schedule.transfers,
                    solver="cpsat", status=name, objective=value, bound=bound, gap=gap, note=note)


def build_model(problem: MappingProblem, options: SolveOptions = SolveOptions(),
                warm: Sequence[tuple[str, str]] | None = None, warm_policy: str = "belady",
                reference: Schedule | None = None, offchip_floor: float | None = None):
    """(model with objective and hint, its objective terms, the unit-timed warm start or None)."""
    scale = TimeScale(options.time_unit_s) if options.time_unit_s else TimeScale.for_problem(problem)
    hint = None if warm is None else unit_schedule(problem, scale, warm, warm_policy)
    model = CpsatModel(problem, scale, options.max_reloads,
                       reloads=None if hint is None else reload_counts(problem, hint),
                       min_horizon=0 if hint is None else round(hint.makespan_s))
    terms = _objective_terms(model, options.objective, reference)
    model.m.minimize(sum(c * v for c, v in terms.expr) + terms.offset)
    if offchip_floor is not None and terms.kind == "offchip":
        inexact = sum(1 for c in problem.costs.values() if c.offchip_bytes != round(c.offchip_bytes))
        model.m.add(sum(c * v for c, v in terms.expr) + terms.offset >= math.floor(offchip_floor - 0.5 * inexact))
    if hint is not None:
        add_hint(model, hint)
    return model, terms, hint


class _Watch(cp_model.CpSolverSolutionCallback):
    """Shows each solution's objective and the proven bound on the progress line (terminals only;
    it reads the search, never steers it, so schedules stay the same)."""

    def __init__(self, live, unit_s: float | None):
        super().__init__()
        self._live, self._unit_s = live, unit_s

    def on_solution_callback(self) -> None:
        scale = self._unit_s or 1.0
        self._live.update(objective=self.objective_value * scale, bound=self.best_objective_bound * scale,
                          unit="s" if self._unit_s else "(model units)")


@dataclass
class _Terms:
    expr: list[tuple[int, object]]
    offset: int
    norm: dict[str, float]
    kind: str
    slack: int
    units: dict[str, float]

    def bound_value(self, best_bound: float, scale: TimeScale, model: CpsatModel) -> float | None:
        """A valid lower bound on the exact objective, or None for a mix."""
        if self.kind == "makespan":
            return scale.bound_seconds(best_bound, self.slack)
        if self.kind in ("energy", "offchip"):
            unit = self.units[self.kind]
            return max(0.0, (math.floor(best_bound + 1e-9) - self.offset - self.slack) * unit)
        return None


def _objective_terms(model: CpsatModel, objective: Objective, hint: Schedule | None) -> _Terms:
    """Linear integer objective. Energy is in units of (total worst energy)/1e6 and rounded to
    nearest, so its bound is net of half a unit per term; bytes are exact integers."""
    p = model.p
    nterms = len(model.x) + len(model.transfers)
    # rounding of durations: at most one unit per op or transfer whose duration was not exact
    slack = sum(1 for op in p.ops if not all(model.scale.exact(p.costs[(op.name, d)].latency_s)
                                             for d in p.capable_devices(op.name)))
    slack += sum(1 for t in model.transfers
                 if not model.scale.exact(p.links[(t.src, t.dst)].time_s(p.tensors[t.tensor].size_bytes)))
    worst_e = sum(c.energy_j for c in p.costs.values()) + sum(
        p.links[(t.src, t.dst)].energy_j(p.tensors[t.tensor].size_bytes) for t in model.transfers)
    e_unit = max(worst_e / ENERGY_RESOLUTION, 1e-30)
    energy = [(round(p.costs[k].energy_j / e_unit), x) for k, x in model.x.items()]
    energy += [(round(p.links[(t.src, t.dst)].energy_j(p.tensors[t.tensor].size_bytes) / e_unit), t.present)
               for t in model.transfers]
    off = [(round(p.costs[k].offchip_bytes), x) for k, x in model.x.items()]
    off += [(p.tensors[t.tensor].size_bytes, t.present) for t in model.transfers
            if crosses_offchip(t.src, t.dst, p.offchip_memories)]
    units = {"energy": e_unit, "offchip": 1.0}
    kind = objective.kind
    if kind == "makespan":
        return _Terms([(1, model.makespan)], 0, {}, kind, slack, units)
    if kind == "energy":
        return _Terms(energy, 0, {}, kind, nterms, units)
    if kind == "offchip":
        return _Terms(off, 0, {}, kind, 0, units)
    # Weighted mix: each term divided by the warm start's value (or the worst case), so weights
    # are dimensionless; scaled to integers of resolution 1e-4 per unit weight.
    norm = objective.normalizers(p, hint, model)
    scale = 100_000_000  # the mix is ~1.0 at the warm start: 1e8 integer steps per unit of weight
    expr = []
    if objective.w_latency:
        expr.append((max(1, round(scale * objective.w_latency * model.scale.unit_s / norm["makespan"])), model.makespan))
    if objective.w_energy:
        f = scale * objective.w_energy * e_unit / norm["energy"]
        expr += [(round(c * f), v) for c, v in energy if round(c * f)]
    if objective.w_offchip:
        f = scale * objective.w_offchip / norm["offchip"]
        expr += [(round(c * f), v) for c, v in off if round(c * f)]
    return _Terms(expr, 0, norm, kind, slack, units)


def _extract(model: CpsatModel, solver: cp_model.CpSolver) -> Schedule:
    p, scale = model.p, model.scale
    slots = {}
    for op in p.ops:
        d = next(d for d in p.capable_devices(op.name) if solver.boolean_value(model.x[(op.name, d)]))
        start = scale.seconds(solver.value(model.start[op.name]))
        slots[op.name] = OpSlot(op.name, d, start, start + p.costs[(op.name, d)].latency_s)
    transfers = []
    for tr in model.transfers:
        if solver.boolean_value(tr.present):
            start = scale.seconds(solver.value(tr.start))
            nbytes = p.tensors[tr.tensor].size_bytes
            transfers.append(Transfer(tr.tensor, tr.src, tr.dst, start,
                                      start + p.links[(tr.src, tr.dst)].time_s(nbytes), nbytes))
    residency = []
    for (t, mem), segs in sorted(model.segments.items()):
        for seg in segs:
            if solver.boolean_value(seg.present):
                off = None if seg.offset is None else solver.value(seg.offset)
                residency.append(Residency(t, mem, scale.seconds(solver.value(seg.start)),
                                           scale.seconds(solver.value(seg.end)), 0 if off is None else off,
                                           p.tensors[t].size_bytes))
    residency.sort(key=lambda r: (r.memory, r.start_s, r.tensor))
    transfers.sort(key=lambda t: (t.start_s, t.src_memory, t.dst_memory, t.tensor))
    return Schedule(slots=slots, residency=tuple(residency), transfers=tuple(transfers),
                    solver="cpsat", status="", objective=0.0, bound=None, gap=None)

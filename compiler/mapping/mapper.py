"""Map one function: choose the solver, warm-start CP-SAT, scale by blocks, fall back loudly.

- `heft` (HEFT list order + Belady eviction), `topo-lru` (topological order + LRU eviction) and
  `single:DEVICE` are the baselines; the best of the first two (and, for `offchip` on one device
  with a scratchpad, the least-bytes plan of traffic_bound/traffic_plan) is CP-SAT's warm start
  and fallback.
- `cpsat` (default): when the heuristic already meets a proven lower bound it is optimal and kept
  (status OPTIMAL); small functions are solved whole; large ones made of identical blocks (decoder
  layers) solve one block with CP-SAT and repeat it over every block, keeping the best of: its
  devices and order replayed with Belady eviction, rigid copies of its schedule (stitch.py), and
  overlapped copies whose ops and transfers are placed one by one (overlapped.py: the next layer's loads
  overlap the current layer's compute); each candidate must pass the checker. If CP-SAT finds
  nothing in time, nothing better than the heuristic, or no block candidate passes the checker,
  the heuristic is used and `note` says why. The caller checks every schedule with the
  independent checker.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from pimc.errors import ScheduleError
from pimc.mapping.bandwidth import shared_memories
from pimc.mapping.blocks import Blocks, counterparts, find_blocks
from pimc.mapping.bounds import lower_bound
from pimc.mapping.checker import schedule_violations
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.list_scheduler import heft_placement
from pimc.mapping.objective import Objective
from pimc.mapping.problem import MappingProblem, Tensor
from pimc.mapping.schedule import Schedule
from pimc.mapping.tolerance import tol
from pimc.mapping.traffic_bound import scratchpad_plan
from pimc.mapping.traffic_plan import plan_schedule

SOLVERS = ("cpsat", "heft", "topo-lru")
"""Plus `single:DEVICE` (every op on one device)."""


@dataclass(frozen=True)
class MapOptions:
    solver: str = "cpsat"
    objective: Objective = Objective()
    time_limit_s: float = 1.0
    """Per CP-SAT solve, in CP-SAT's deterministic time (reproducible; roughly seconds)."""
    max_whole_ops: int = 40
    """Functions up to this many ops are solved whole; larger ones by identical blocks."""
    max_reloads: int = 1
    workers: int = 1


def baseline(problem: MappingProblem, name: str, stats: dict[str, int] | None = None) -> Schedule:
    """One of the heuristic baselines by name (ScheduleError if it cannot schedule). `stats`, if
    given, receives why it evicted (evict.sequence_schedule's counters)."""
    if name == "heft":
        return sequence_schedule(problem, heft_placement(problem), "belady", solver="heft+belady", stats=stats)
    if name == "topo-lru":
        devices = dict(heft_placement(problem))
        return sequence_schedule(problem, [(op.name, devices[op.name]) for op in problem.ops], "lru",
                                 solver="topo+lru", stats=stats)
    if name.startswith("single:"):
        device = name.split(":", 1)[1]
        if device not in problem.devices:
            raise ScheduleError(f"solver {name!r}: no device {device!r} (devices: {', '.join(problem.devices)})")
        cannot = [op.name for op in problem.ops if (op.name, device) not in problem.costs]
        if cannot:
            raise ScheduleError(f"solver {name!r}: device {device!r} cannot run {len(cannot)} ops (first: {cannot[0]})")
        return sequence_schedule(problem, heft_placement(problem, (device,)), "belady", solver=name, stats=stats)
    raise ScheduleError(f"unknown solver {name!r} (expected {', '.join(SOLVERS)} or single:DEVICE)")


def _finish(problem: MappingProblem, s: Schedule, objective: Objective, note: str, status: str | None = None,
            bound: float | None = None, norm: dict | None = None) -> Schedule:
    value = objective.value(problem, s, norm)
    if bound is not None and bound > value + tol(value, bound):
        # a lower bound above a checked schedule is a bug in the bound: say so rather than claim a gap
        note = f"{note}; lower bound {bound:.6g} withdrawn: above this checked schedule's {value:.6g}"
        bound, status = None, "FEASIBLE"
    if bound is not None and status is None:
        status = "FEASIBLE"
    gap = None if bound is None else (0.0 if value <= 0 else max(0.0, (value - bound) / value))
    return dataclasses.replace(s, status=status or s.status, objective=value, bound=bound, gap=gap,
                               objective_kind=objective.kind if objective.kind != "mix" else objective.name, note=note)


def _heuristic(problem: MappingProblem, objective: Objective) -> tuple[Schedule | None, str]:
    """The best of HEFT+Belady, topological+LRU and, for off-chip bytes on one device with a
    scratchpad, traffic_bound's least-bytes plan (traffic_plan, optimal when its tensors get
    addresses; else its order + Belady; that plan ignores memory bandwidth, so not when a memory's
    bandwidth is shared). None if all fail."""
    found, errors = [], []
    for name in ("heft", "topo-lru"):
        try:
            found.append(baseline(problem, name))
        except ScheduleError as e:
            errors.append(f"{name}: {e}")
    plan = scratchpad_plan(problem) if objective.kind == "offchip" and not shared_memories(problem) else None
    if plan is not None:  # one device on a scratchpad: the least-bytes plan, with addresses if they fit
        try:
            exact = plan_schedule(problem)
            found.append(exact or sequence_schedule(problem, [(o, problem.devices[0]) for o in plan[1]], "belady",
                                                    solver="bytes-order+belady"))
        except ScheduleError as e:
            errors.append(f"bytes-order: {e}")
    if not found:
        return None, errors[0]
    norm = objective.normalizers(problem, found[0])
    best = found[0]  # HEFT unless another is better by more than float noise
    for s in found[1:]:
        if objective.value(problem, s, norm) < objective.value(problem, best, norm) * (1 - 1e-9):
            best = s
    return best, ""


def map_problem(problem: MappingProblem, options: MapOptions = MapOptions()) -> Schedule:
    obj = options.objective
    if options.solver != "cpsat":
        s = baseline(problem, options.solver)
        return _finish(problem, s, obj, f"baseline {s.solver} requested", bound=lower_bound(problem, obj))
    _fits_somewhere(problem)
    heur, why = _heuristic(problem, obj)
    norm = obj.normalizers(problem, heur)
    bound = lower_bound(problem, obj)
    if heur is not None and bound is not None and obj.value(problem, heur) <= bound * (1 + 1e-9):
        return _finish(problem, heur, obj, f"{heur.solver} meets the lower bound: optimal without search",
                       "OPTIMAL", obj.value(problem, heur))  # equal to the bound up to float rounding
    blocks = find_blocks(problem) if len(problem.ops) > options.max_whole_ops else None
    try:
        if blocks is not None and heur is not None:
            s, note = _solve_blocks(problem, blocks, heur, options)
            meets = bound is not None and obj.value(problem, s, norm) <= bound * (1 + 1e-9)
            s = _finish(problem, s, obj, note + ("; optimal: meets the lower bound" if meets else ""),
                        "OPTIMAL" if meets else None, bound=bound, norm=norm)
            s = dataclasses.replace(s, gap=0.0) if meets else s  # equal to the bound up to float rounding
        else:
            s = _solve_cpsat(problem, _solve_options(options),
                            warm=_placement(heur) if heur is not None else None, reference=heur,
                            offchip_floor=bound if obj.kind == "offchip" else None)
            s = dataclasses.replace(s, objective_kind=obj.kind if obj.kind != "mix" else obj.name,
                                    note=_joined(f"CP-SAT on the whole function ({len(problem.ops)} ops), "
                                                 f"warm start {heur.solver if heur else 'none'}", s.note))
            if bound is not None and s.bound is not None and bound > s.bound:
                s = dataclasses.replace(s, bound=bound, gap=0.0 if s.objective <= 0 else max(0.0, (s.objective - bound) / s.objective))
                if s.objective <= bound * (1 + 1e-9):  # proven by the problem's own lower bound
                    s = dataclasses.replace(s, status="OPTIMAL", gap=0.0, note=s.note + "; optimal: meets the lower bound")
    except ScheduleError as e:
        if heur is None:
            raise ScheduleError(f"no schedule: {why} (and CP-SAT: {e})") from None
        return _finish(problem, heur, obj, f"fallback to {heur.solver}: CP-SAT: {e}", bound=bound, norm=norm)
    if heur is not None and obj.value(problem, heur, norm) < obj.value(problem, s, norm) * (1 - 1e-9):
        return _finish(problem, heur, obj, f"{heur.solver} kept: CP-SAT's best ({s.solver}, {s.status}) "
                                           f"was worse within the time limit", bound=bound, norm=norm)
    return s


def _fits_somewhere(problem: MappingProblem) -> None:
    """Fail fast, naming the tensor, when one cannot fit any memory it would have to be in."""
    for t, tensor in problem.tensors.items():
        users = problem.uses[t]
        if not users:
            continue
        mems = {problem.memory_of[d] for op in users for d in problem.capable_devices(op)}
        if t in problem.home:
            mems.add(problem.home[t])
        largest = max(problem.capacity_bytes[m] for m in mems)
        if tensor.size_bytes > largest:
            where = ", ".join(f"{m!r} ({problem.capacity_bytes[m]} bytes)" for m in sorted(mems))
            big = max(sorted(mems), key=problem.capacity_bytes.__getitem__)
            raise ScheduleError(f"memory {big!r} overflows: {tensor.kind} {t!r} needs {tensor.size_bytes} bytes, "
                                f"more than any memory it must be in: {where}")


def _solve_options(options: MapOptions):
    from pimc.mapping.cpsat_solve import SolveOptions  # OR-Tools loads only when CP-SAT runs

    return SolveOptions(objective=options.objective, time_limit_s=options.time_limit_s,
                        workers=options.workers, max_reloads=options.max_reloads)


def _solve_cpsat(problem: MappingProblem, options, **kw) -> Schedule:
    from pimc.mapping.cpsat_solve import solve_cpsat

    return solve_cpsat(problem, options, **kw)


def _placement(s: Schedule) -> list[tuple[str, str]]:
    return [(x.op, x.device) for x in s.ops_in_order()]


def _solve_blocks(problem: MappingProblem, blocks: Blocks, heur: Schedule, options: MapOptions) -> tuple[Schedule, str]:
    """Solve block 0 (with its boundary tensors where the heuristic put them) and build the whole
    function three ways, keeping the best that passes the checker (ScheduleError if none does, so
    the caller falls back to the heuristic and says why): replayed (block 0's devices and order for every block,
    replayed op by op with Belady eviction), stitched (every block a rigid copy of block 0's
    schedule, shifted as early as inputs and resources allow) and overlapped (each op and transfer
    of every copy placed on its own as early as possible, so the next block's loads overlap the
    current block's compute; overlapped.py)."""
    names = blocks.ops(problem, 0)
    sub = block_problem(problem, names, heur)
    warm = [(o, d) for o, d in _placement(heur) if o in set(names)]
    block = _solve_cpsat(sub, _solve_options(options), warm=warm)
    order = [x.op for x in block.ops_in_order()]
    local = {o: i for i, o in enumerate(names)}
    heur_order = _placement(heur)
    prefix = [(o, d) for o, d in heur_order if problem.op_index[o] < blocks.start]
    suffix = [(o, d) for o, d in heur_order if problem.op_index[o] >= blocks.end]
    placement = list(prefix)
    for k in range(blocks.count):
        ops_k = blocks.ops(problem, k)
        placement += [(ops_k[local[o]], block.slots[o].device) for o in order]
    placement += suffix
    gap = "n/a" if block.gap is None else f"{block.gap:.3g}"
    head = (f"{blocks.count} identical blocks of {blocks.length} ops (ops {blocks.start}..{blocks.end - 1}); "
            f"block 0 by CP-SAT ({block.status}, gap {gap}{'; ' + block.note if block.note else ''}); ")
    obj = options.objective
    norm = obj.normalizers(problem, heur)

    @functools.cache  # the ops before or after the blocks by the heuristic: once for both stitches
    def heuristic_piece(names: tuple[str, ...]):
        return _heuristic_piece(problem, list(names), heur, obj)

    candidates = [("replayed", "replicated and replayed as early as possible with Belady eviction",
                   lambda: (sequence_schedule(problem, placement, "belady", solver="cpsat-blocks"), None))]
    for overlapped, name, how in (
            (False, "stitched", "every block a copy of its schedule, each placed at the earliest offset its "
                                "inputs, devices, links and scratchpad addresses allow"),
            (True, "overlapped", "every block's ops and transfers placed one by one, each as early as its data, "
                                 "device, link, bandwidth and a scratchpad address allow, on block 0's devices")):
        candidates.append((name, how, lambda overlapped=overlapped: _stitch(
            problem, blocks, heur, sub, block, obj, overlapped=overlapped, heuristic_piece=heuristic_piece)))
    ways, failed = {}, []  # every candidate passes the checker before it can be kept
    for name, how, build in candidates:
        try:
            s, edges = build()
            wrong = schedule_violations(problem, s)
            if wrong:
                raise ScheduleError(f"the checker rejects it: {wrong[0]}")
            if name != "replayed":  # the replay is already named cpsat-blocks
                s = dataclasses.replace(s, solver=f"cpsat-{name}")
            ways[name] = (how, s, edges)
        except ScheduleError as e:
            failed.append(f"not {name}: {e}")
    if not ways:  # map_problem falls back to the heuristic and says why
        raise ScheduleError(f"{head}no block schedule passes the checker ({'; '.join(failed)})")
    best = next(iter(ways))  # ties: the earlier way
    for name, (_, s, _) in ways.items():
        if obj.value(problem, s, norm) < obj.value(problem, ways[best][1], norm) * (1 - 1e-9):
            best = name
    made = ", ".join(f"{name} {s.makespan_s:.6g} s" for name, (_, s, _) in ways.items())
    how, s, edges = ways[best]
    tail = "; " + _edges_note(len(prefix), len(suffix), *(edges or (None, None)), default=f"by {heur.solver}")
    return s, head + f"{how} ({made}{''.join('; ' + f for f in failed)})" + tail


def _stitch(problem: MappingProblem, blocks: Blocks, heur: Schedule, sub: MappingProblem, block: Schedule,
            objective: Objective, overlapped: bool = False,
            heuristic_piece=None) -> tuple[Schedule, tuple[str | None, str | None]]:
    """Prefix, the blocks and suffix as pieces, each shifted as early as possible (stitch.py;
    `overlapped`: each op and transfer on its own, overlapped.py); prefix and suffix are solved as
    their own sub-problems by the heuristic, or (`overlapped`) as their counterparts in block 0.
    Also says how those before and those after were scheduled (None: there are none).
    `heuristic_piece(names)`, if given, makes the heuristic's piece (the mapper's cached one)."""
    from pimc.mapping.stitch import Piece, Stitcher, replica_names

    stitcher = Stitcher(problem)
    place = stitcher.add_overlapped if overlapped else stitcher.add
    before = [op.name for op in problem.ops[:blocks.start]]
    after = [op.name for op in problem.ops[blocks.end:]]
    heuristic_piece = heuristic_piece or (lambda names: _heuristic_piece(problem, list(names), heur, objective))
    edges = {}  # how the ops before and after the blocks were scheduled

    def edge(names: list[str], side: str):
        piece = _block_like_piece(problem, names, heur, blocks, block) if overlapped else None
        edges[side] = "as their block-0 counterparts" if piece is not None else f"by {heur.solver}"
        return piece or heuristic_piece(tuple(names))

    if before:
        place(edge(before, "before"))
    names0 = blocks.ops(problem, 0)
    for k in range(blocks.count):
        ops, tensors = replica_names(problem, names0, blocks.ops(problem, k))
        place(Piece(sub, block, ops, tensors))
    if after:
        place(edge(after, "after"))
    return stitcher.schedule("cpsat-stitched"), (edges.get("before"), edges.get("after"))


def _edges_note(n_before: int, n_after: int, before: str | None, after: str | None, default: str) -> str:
    """How the ops before and after the blocks were scheduled, naming each side when they differ."""
    before, after = before or after or default, after or before or default
    if before == after:
        return f"{n_before} ops before and {n_after} after the blocks {before}"
    return f"{n_before} ops before the blocks {before} and {n_after} after {after}"


def _block_like_piece(problem: MappingProblem, names: list[str], heur: Schedule, blocks: Blocks, block: Schedule):
    """The ops before or after the blocks (part of a layer) on the devices and in the order the
    solved block gives their counterparts (blocks.counterparts), replayed with Belady eviction;
    None if they have no counterparts or that order cannot run."""
    from pimc.mapping.stitch import Piece

    pairs = counterparts(problem, blocks, names)
    if pairs is None:
        return None
    rank = {x.op: i for i, x in enumerate(block.ops_in_order())}
    sub = block_problem(problem, names, heur)
    placement = [(n, block.slots[pairs[n]].device) for n in sorted(names, key=lambda n: (rank[pairs[n]], problem.op_index[n]))]
    try:
        s = sequence_schedule(sub, placement, "belady", solver="block-like")
    except ScheduleError:
        return None
    return Piece(sub, s, {n: n for n in names}, {t: t for t in sub.tensors})


def _joined(note: str, solver_note: str) -> str:
    """The mapper's note, followed by what the solver itself reported (e.g. a wall-clock stop)."""
    return f"{note}; {solver_note}" if solver_note else note


def _heuristic_piece(problem: MappingProblem, names: list[str], heur: Schedule, objective: Objective):
    from pimc.mapping.stitch import Piece

    sub = block_problem(problem, names, heur)
    s, why = _heuristic(sub, objective)
    if s is None:
        raise ScheduleError(why)
    return Piece(sub, s, {n: n for n in names}, {t: t for t in sub.tensors})


def block_problem(problem: MappingProblem, names: list[str], heur: Schedule) -> MappingProblem:
    """The sub-problem of ops `names`: tensors from outside become inputs homed where the
    heuristic produced them, tensors read outside become outputs."""
    inside = set(names)
    ops = tuple(problem.op_by_name[n] for n in names)
    used = {t for op in ops for t in (*op.inputs, *op.outputs)}
    tensors, home = {}, {}
    for t in sorted(used):
        tensor = problem.tensors[t]
        prod = problem.producer.get(t)
        if prod is not None and prod not in inside:
            kind = "state" if tensor.kind == "state" else "input"
            tensors[t] = Tensor(t, tensor.size_bytes, kind)
            made = problem.memory_of[heur.slots[prod].device]
            home[t] = problem.spill_to.get(made, made)  # a scratchpad's outputs are written back
        elif prod is not None and tensor.kind == "activation" and any(c not in inside for c in problem.consumers[t]):
            tensors[t] = Tensor(t, tensor.size_bytes, "output")
        else:
            tensors[t] = tensor
            if t in problem.home:
                home[t] = problem.home[t]
    costs = {k: c for k, c in problem.costs.items() if k[0] in inside}
    return MappingProblem(ops=ops, tensors=tensors, devices=problem.devices, memory_of=problem.memory_of,
                          capacity_bytes=problem.capacity_bytes, costs=costs, links=problem.links,
                          offchip_memories=problem.offchip_memories, home=home, spill_to=problem.spill_to,
                          resident_devices=problem.resident_devices, memory_bandwidth=problem.memory_bandwidth)

"""Makespan lower bounds from ops that only some devices can run (a device runs one op at a time).

- Work: the ops whose capable devices all lie in a set S run on S, so S is busy at least their
  fastest total time over |S|.
- Chain: on one device d, a chain of groups of ops only d can run, each op of a group depending on
  every op of the previous group (a layer's q/k/v projections, then o_proj, then up/gate, then down,
  then the next layer's...). d runs the groups one after the other, and between the last op of a
  group and the first of the next runs at least the longest path of ops between them (each at its
  fastest); before the first group runs at least its ops' earliest start, after the last the least
  longest path to the end. So the makespan is at least that start, plus every group's work, plus the
  least path between consecutive groups, plus the least path after the last. Transfers only add time.
"""

from __future__ import annotations

import itertools

from pimc.mapping.problem import MappingProblem

MAX_SUBSET_DEVICES = 10
"""Beyond this many devices only single devices and all devices are tried (2^n subsets)."""


def restricted_work_bound(p: MappingProblem, fastest: dict[str, float]) -> float:
    """The most, over device sets S, of the fastest work of ops only S can run, over |S|."""
    capable = {op.name: frozenset(p.capable_devices(op.name)) for op in p.ops}
    n = len(p.devices)
    if n <= MAX_SUBSET_DEVICES:
        sets = [frozenset(c) for r in range(1, n + 1) for c in itertools.combinations(p.devices, r)]
    else:
        sets = [frozenset({d}) for d in p.devices] + [frozenset(p.devices)]
    best = 0.0
    for s in sets:
        work = sum(fastest[o] for o, c in capable.items() if c <= s)
        best = max(best, work / len(s))
    return best


def chain_bound(p: MappingProblem, fastest: dict[str, float], earliest_start: dict[str, float]) -> float:
    """The most, over devices, of the chain-of-groups bound (module docstring); `earliest_start`
    is each op's least start time (critical path and loads)."""
    names = [op.name for op in p.ops]  # topological
    index = {n: i for i, n in enumerate(names)}
    succ = {n: sorted(p.graph.successors(n), key=index.__getitem__) for n in names}
    ancestors: dict[str, int] = {}  # bitmask over op indices
    for n in names:
        mask = 0
        for u in p.graph.predecessors(n):
            mask |= ancestors[u] | (1 << index[u])
        ancestors[n] = mask
    after: dict[str, float] = {}  # longest path of fastest ops after n's end
    for n in reversed(names):
        after[n] = max((fastest[v] + after[v] for v in succ[n]), default=0.0)
    best = 0.0
    for d in p.devices:
        only = [n for n in names if p.capable_devices(n) == (d,)]
        groups = _groups(only, ancestors, index)
        if not groups:
            continue
        total = min(earliest_start[n] for n in groups[0]) + min(after[n] for n in groups[-1])
        total += sum(fastest[n] for g in groups for n in g)
        for prev, nxt in zip(groups, groups[1:]):
            total += _least_path_between(prev, set(nxt), names, index, succ, fastest)
        best = max(best, total)
    return best


def _groups(only: list[str], ancestors: dict[str, int], index: dict[str, int]) -> list[list[str]]:
    """Split `only` (topological) into groups, each op of a group a descendant of every op of the
    previous group; an op that fits neither its group nor a new one is left out."""
    groups: list[list[str]] = []
    prev_mask = 0  # the previous group's ops
    for n in only:
        cur_mask = sum(1 << index[x] for x in groups[-1]) if groups else 0
        if groups and ancestors[n] & cur_mask == cur_mask:
            groups.append([n])  # depends on the whole current group: a new group
            prev_mask = cur_mask
        elif not groups or ancestors[n] & prev_mask == prev_mask:
            if not groups:
                groups.append([n])
            else:
                groups[-1].append(n)
    return groups


def _least_path_between(prev: list[str], nxt: set[str], names: list[str], index: dict[str, int],
                        succ: dict[str, list[str]], fastest: dict[str, float]) -> float:
    """min over a in prev, b in nxt of the longest path of fastest ops strictly between a and b
    (every b depends on every a)."""
    least = float("inf")
    last = max(index[b] for b in nxt)
    for a in prev:
        reach = {a: 0.0}  # longest path from a's end to each reached op's start
        for n in names[index[a]:last + 1]:
            if n not in reach:
                continue
            end = reach[n] + (fastest[n] if n != a else 0.0)
            for v in succ[n]:
                if index[v] <= last and end > reach.get(v, -1.0):
                    reach[v] = end
        least = min(least, min(reach[b] for b in nxt))
    return least

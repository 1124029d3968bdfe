"""The sweeps that keep mapping linear in the model size (first-fit addresses, the checker's
address-overlap test) give exactly what the plain quadratic versions give."""

from __future__ import annotations

import random

from pimc.mapping.checker import _address_overlaps, _before
from pimc.mapping.list_scheduler import _assign_offsets
from pimc.mapping.problem import MappingProblem, OpNode, Tensor
from pimc.mapping.schedule import Residency
from pimc.targets.cost import Cost


def _plain_first_fit(problem, residency):
    out = []
    for mem in sorted({r.memory for r in residency}):
        rs = sorted((r for r in residency if r.memory == mem),
                    key=lambda r: (r.start_s, -problem.tensors[r.tensor].size_bytes, r.tensor))
        placed = []
        for r in rs:
            size = problem.tensors[r.tensor].size_bytes
            busy = sorted((o, o + n) for a, b, o, n in placed if a < r.end_s and r.start_s < b)
            off = 0
            for lo, hi in busy:
                if off + size <= lo:
                    break
                off = max(off, hi)
            placed.append((r.start_s, r.end_s, off, size))
            out.append(Residency(r.tensor, r.memory, r.start_s, r.end_s, off, r.size_bytes))
    out.sort(key=lambda r: (r.memory, r.start_s, r.tensor))
    return out


def _plain_overlaps(m, placed, size):
    v, active = [], []
    for r in placed:
        active = [a for a in active if _before(r.start_s, a.end_s)]
        lo, hi = r.offset_bytes, r.offset_bytes + size[r.tensor]
        for a in active:
            alo, ahi = a.offset_bytes, a.offset_bytes + size[a.tensor]
            if lo < ahi and alo < hi and _before(r.start_s, r.end_s) and _before(a.start_s, a.end_s):
                v.append(f"tensors {a.tensor!r} and {r.tensor!r} overlap in {m!r} at addresses "
                         f"[{max(lo, alo)}, {min(hi, ahi)}) during [{r.start_s}, {min(r.end_s, a.end_s)}]")
        active.append(r)
    return v


def _random_residency(seed: int, n: int = 60):
    rng = random.Random(seed)
    tensors = {f"t{i}": Tensor(f"t{i}", rng.choice([0, 8, 16, 24, 64]), "input") for i in range(n)}
    problem = MappingProblem(ops=(OpNode("op", "x", ("t0",), ()),), tensors=tensors, devices=("d",),
                             memory_of={"d": "m"}, capacity_bytes={"m": 1 << 30, "n": 1 << 30},
                             costs={("op", "d"): Cost(1.0, 0.0, 0.0)})
    horizon = 20.0
    res = []
    for i in range(n):
        a = float(rng.randrange(0, 20))
        b = horizon if rng.random() < 0.3 else a + rng.choice([0.0, 1.0, 2.0, 5.0])  # some last to the end, some empty
        res.append(Residency(f"t{i}", rng.choice("mn"), a, min(b, horizon), None, tensors[f"t{i}"].size_bytes))
    return problem, res


def test_first_fit_equals_plain_version():
    for seed in range(40):
        problem, res = _random_residency(seed)
        assert _assign_offsets(problem, res) == _plain_first_fit(problem, res)


def test_address_overlaps_equal_plain_version():
    for seed in range(60):
        problem, res = _random_residency(seed)
        rng = random.Random(seed)
        placed = [Residency(r.tensor, r.memory, r.start_s, r.end_s, rng.choice([0, 8, 16, 32, 64]), r.size_bytes)
                  for r in res]
        if seed % 2:  # valid placements too, where the fast path runs throughout
            placed = _assign_offsets(problem, res)
        placed.sort(key=lambda r: (r.start_s, r.end_s, r.tensor))
        size = {r.tensor: problem.tensors[r.tensor].size_bytes for r in placed}
        assert _address_overlaps("m", placed, size) == _plain_overlaps("m", placed, size)

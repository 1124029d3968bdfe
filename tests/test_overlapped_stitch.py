"""Overlapped stitching (overlapped.py): every op and transfer of a block's copy placed on its own,
as early as its data, device, link and a scratchpad address allow, so the next layer's weight loads
run while the current layer computes; the partial layers around the blocks scheduled as their
block-0 counterparts; and the mapper keeping it when it beats the replay and the rigid stitch."""

from __future__ import annotations

import json

import pytest

from pimc.mapping.blocks import counterparts, find_blocks
from pimc.mapping.checker import check_schedule
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.mapper import MapOptions, block_problem, map_problem
from pimc.mapping.problem import LinkCost, MappingProblem, OpNode, Tensor
from pimc.mapping.stitch import Piece, Stitcher, replica_names
from pimc.mapping.overlapped import place_in
from pimc.targets.cost import Cost

MB = 1_000_000
DMA = LinkCost(1e6, 0.0, 0.0)  # 1 MB/s: a 2 MB weight takes 2 s, a 1 kB activation 1 ms
NOC = LinkCost(1e9, 0.0, 0.0)  # 1 kB in 1 us


def machine(cores: int, capacity: int, tensors: dict, ops: list, costs: dict) -> MappingProblem:
    """`cores` cores, each computing from its own scratchpad s{i} of `capacity` bytes, loading from
    one DRAM over its own DMA link; scratchpads linked pairwise by a fast NoC."""
    devs = [f"c{i}" for i in range(cores)]
    links = {}
    for i in range(cores):
        links[("dram", f"s{i}")] = links[(f"s{i}", "dram")] = DMA
        links.update({(f"s{i}", f"s{j}"): NOC for j in range(cores) if j != i})
    return MappingProblem(
        ops=tuple(ops), tensors=tensors, devices=tuple(devs), memory_of={d: f"s{i}" for i, d in enumerate(devs)},
        capacity_bytes={**{f"s{i}": capacity for i in range(cores)}, "dram": 10**9}, costs=costs, links=links,
        offchip_memories=frozenset({"dram"}),
        home={t: "dram" for t, x in tensors.items() if x.kind in ("input", "weight")},
        spill_to={f"s{i}": "dram" for i in range(cores)})


def two_core_stack(n: int) -> MappingProblem:
    """Layer k: a_k(w_k, h_{k-1}) -> g_k on core 0, b_k(v_k, g_k) -> h_k on core 1; weights 2 MB,
    ops 1 s, each scratchpad holds one weight and three activations."""
    tensors, ops, costs, prev = {"x": Tensor("x", 1000, "input")}, [], {}, "x"
    for k in range(n):
        tensors.update({f"w{k}": Tensor(f"w{k}", 2 * MB, "weight"), f"v{k}": Tensor(f"v{k}", 2 * MB, "weight"),
                        f"g{k}": Tensor(f"g{k}", 1000, "activation"),
                        f"h{k}": Tensor(f"h{k}", 1000, "output" if k == n - 1 else "activation")})
        ops += [OpNode(f"a{k}", "linear", (f"w{k}", prev), (f"g{k}",)), OpNode(f"b{k}", "linear", (f"v{k}", f"g{k}"), (f"h{k}",))]
        costs.update({(f"a{k}", "c0"): Cost(1.0, 0.0, 0.0), (f"b{k}", "c1"): Cost(1.0, 0.0, 0.0)})
        prev = f"h{k}"
    return machine(2, 2 * MB + 3000, tensors, ops, costs)


def stitch_copies(problem: MappingProblem, n: int, overlapped: bool):
    heur = sequence_schedule(problem, [(op.name, "c0" if op.name[0] == "a" else "c1") for op in problem.ops])
    sub = block_problem(problem, ["a0", "b0"], heur)
    block = sequence_schedule(sub, [("a0", "c0"), ("b0", "c1")])
    stitcher = Stitcher(problem)
    for k in range(n):
        ops, tensors = replica_names(problem, ["a0", "b0"], [f"a{k}", f"b{k}"])
        (stitcher.add_overlapped if overlapped else stitcher.add)(Piece(sub, block, ops, tensors))
    return block, stitcher.schedule("stitched")


def test_overlapped_copies_start_each_load_when_its_own_space_frees():
    problem = two_core_stack(3)
    # One layer: w0 and v0 load in parallel [0, 2], x [2, 2.001], a0 [2.001, 3.001], g0 over the
    # NoC by 3.001001, b0 [3.001001, 4.001001], h0 written back to DRAM by 4.002001.
    block, rigid = stitch_copies(problem, 3, overlapped=False)
    assert block.makespan_s == pytest.approx(4.002001, abs=1e-9)
    # Rigid copies: w1 may only enter s0 once w0 leaves (3.001), v1 s1 once v0 leaves (4.001001);
    # one offset for the whole copy takes the later, 4.001001, per layer: 2 x 4.001001 + 4.002001.
    assert rigid.makespan_s == pytest.approx(12.004003, abs=1e-9)
    _, overlapped = stitch_copies(problem, 3, overlapped=True)
    # Each on its own: w1 loads [3.001, 5.001] while b0 runs, h0 comes back from DRAM [5.001,
    # 5.002], a1 [5.002, 6.002]; v1 [4.001001, 6.001001] after b0, b1 [6.002001, 7.002001]: the
    # layer period is a's 1 s + w's 2 s + h's reload 1 ms = 3.001 s: a2 starts at 2.001 + 2 x 3.001
    # = 8.003, b2 ends at 10.003001, h2 is written back by 10.004001.
    assert overlapped.makespan_s == pytest.approx(10.004001, abs=1e-9)
    w1 = next(t for t in overlapped.transfers if t.tensor == "w1")
    assert (w1.start_s, overlapped.slots["b0"].start_s) == (pytest.approx(3.001), pytest.approx(3.001001))
    check_schedule(problem, rigid)
    check_schedule(problem, overlapped)


def test_overlapped_stitching_is_deterministic():
    a, b = stitch_copies(two_core_stack(3), 3, True)[1], stitch_copies(two_core_stack(3), 3, True)[1]
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())


def ffn_stack(n: int) -> MappingProblem:
    """Per layer: y = norm(h); a = g(G, y); b = u(U, y); c = a * b; h' = d(D, c). Three 2 MB weights
    (2 s each over a core's DMA link), linear ops 0.2 s, the others 10 ms, on any of three cores
    whose scratchpads hold two weights (double buffering) and ten activations."""
    tensors, ops, costs, prev = {"x": Tensor("x", 1000, "input")}, [], {}, "x"
    for k in range(n):
        tensors.update({f"{w}{k}": Tensor(f"{w}{k}", 2 * MB, "weight") for w in "GUD"})
        tensors.update({f"{t}{k}": Tensor(f"{t}{k}", 1000, "activation") for t in "yabc"})
        tensors[f"h{k}"] = Tensor(f"h{k}", 1000, "output" if k == n - 1 else "activation")
        layer = [OpNode(f"n{k}", "norm", (prev,), (f"y{k}",)), OpNode(f"g{k}", "linear", (f"G{k}", f"y{k}"), (f"a{k}",)),
                 OpNode(f"u{k}", "linear", (f"U{k}", f"y{k}"), (f"b{k}",)), OpNode(f"m{k}", "mul", (f"a{k}", f"b{k}"), (f"c{k}",)),
                 OpNode(f"d{k}", "linear", (f"D{k}", f"c{k}"), (f"h{k}",))]
        ops += layer
        costs.update({(op.name, f"c{i}"): Cost(0.2 if op.kind == "linear" else 0.01, 0.0, 0.0) for op in layer for i in range(3)})
        prev = f"h{k}"
    return machine(3, 4 * MB + 10_000, tensors, ops, costs)


def test_four_layers_cost_less_than_four_times_one_on_a_scratchpad_target():
    one = map_problem(ffn_stack(1))
    # G, U, D stream in over the three DMA links in parallel [0, 2]; g and u [2, 2.2], m, d: 2.410001.
    assert one.makespan_s == pytest.approx(2.410001, abs=1e-9)
    problem = ffn_stack(4)
    s = map_problem(problem, MapOptions(max_whole_ops=5))  # the block path, as for a function of many layers
    check_schedule(problem, s)
    # Blocks of 5 ops from d0 (layer 0's first ops read the input x, layer 3's last writes the
    # output); the 4 ops before and 1 after are scheduled as their block-0 counterparts.
    assert "3 identical blocks of 5 ops (ops 4..18)" in s.note
    assert "4 ops before and 1 after the blocks as their block-0 counterparts" in s.note
    assert s.solver == "cpsat-overlapped"
    assert "(replayed 8.611 s, stitched 10.205 s, overlapped 8.416 s)" in s.note
    # Overlapped, the G and U links stream G0..G3 and U0..U3 back to back, so G3 and U3 are in at
    # 8.0: g3 and u3 [8.0, 8.2], a3 and b3 over the NoC, m3 [8.200001, 8.210001], c3 to DRAM and
    # back (a block boundary) after D3 is in (8.214001) by 8.215001, d3 [8.215001, 8.415001], h3
    # written back by 8.416001.
    assert s.makespan_s == pytest.approx(8.416001, abs=1e-9)
    assert [s.slots[f"g{k}"].start_s for k in range(4)] == pytest.approx([2.0, 4.0, 6.0, 8.0])
    assert s.makespan_s < 4 * one.makespan_s  # 0.873 x


_HASH_RUN = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from test_overlapped_stitch import ffn_stack
from pimc.mapping.mapper import MapOptions, map_problem
s = map_problem(ffn_stack(4), MapOptions(max_whole_ops=5))
print(s.solver, hashlib.sha256(json.dumps(s.to_json()).encode()).hexdigest())
"""


def test_overlapped_mapping_is_byte_identical_run_to_run():
    """Two fresh processes under different hash seeds (set and dict orders of strings differ)
    print the same schedule hash, and so does this process."""
    import hashlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    outs = []
    for seed in ("0", "4242"):
        r = subprocess.run([sys.executable, "-c", _HASH_RUN, here], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    s = map_problem(ffn_stack(4), MapOptions(max_whole_ops=5))
    assert s.solver == "cpsat-overlapped"
    mine = f"{s.solver} {hashlib.sha256(json.dumps(s.to_json()).encode()).hexdigest()}"
    assert outs == [mine, mine]


def test_partial_layers_map_to_their_block_counterparts():
    problem = ffn_stack(4)
    blocks = find_blocks(problem)
    assert (blocks.start, blocks.length, blocks.count) == (4, 5, 3)
    assert counterparts(problem, blocks, ["n0", "g0", "u0", "m0"]) == {"n0": "n1", "g0": "g1", "u0": "u1", "m0": "m1"}
    assert counterparts(problem, blocks, ["d3"]) == {"d3": "d0"}
    assert counterparts(two_core_stack(3), find_blocks(two_core_stack(3)), []) == {}


def test_address_choice_leaves_room_for_double_buffering():
    # The preferred address when it is free.
    assert place_in([(0, 4, 5.0)], 4, 10, prefer=6) == 6
    # Else the smallest gap that fits, against the neighbour that stays longer: [4, 10) lies between
    # a range freed at 5 and the memory's end (forever), so the top, 6..10, leaving 4..6 to merge
    # with 0..4 when that range frees.
    assert place_in([(0, 4, 5.0)], 4, 10, prefer=0) == 6
    assert place_in([(6, 10, 5.0)], 4, 10, prefer=6) == 0
    assert place_in([(0, 2, 9.0), (5, 6, 1.0), (8, 10, 9.0)], 2, 10, prefer=0) == 6  # best fit: [6, 8)
    assert place_in([(0, 4, 5.0), (6, 10, 9.0)], 4, 10, prefer=0) is None


def _corrupt_replay(monkeypatch):
    """The replayed candidate twice as fast as it can be (every time halved): invalid, and the best
    by makespan, so only the checker keeps the mapper from choosing it."""
    import dataclasses

    from pimc.mapping import mapper

    def halved(problem, placement, policy, solver, **kw):
        s = sequence_schedule(problem, placement, policy, solver=solver, **kw)
        if solver != "cpsat-blocks":
            return s
        half = lambda x: dataclasses.replace(x, start_s=x.start_s / 2, end_s=x.end_s / 2)
        return dataclasses.replace(s, slots={k: half(v) for k, v in s.slots.items()},
                                   residency=tuple(map(half, s.residency)), transfers=tuple(map(half, s.transfers)))
    monkeypatch.setattr(mapper, "sequence_schedule", halved)


def test_a_corrupt_replay_is_checked_and_not_kept(monkeypatch):
    _corrupt_replay(monkeypatch)
    problem = ffn_stack(4)
    s = map_problem(problem, MapOptions(max_whole_ops=5))
    check_schedule(problem, s)
    assert s.solver == "cpsat-overlapped"
    assert "not replayed: the checker rejects it: op " in s.note
    assert "(stitched 10.205 s, overlapped 8.416 s; not replayed" in s.note


def test_no_valid_block_schedule_falls_back_to_the_heuristic_with_a_note(monkeypatch):
    from pimc.errors import ScheduleError
    from pimc.mapping import mapper

    _corrupt_replay(monkeypatch)

    def no_stitch(*a, **kw):
        raise ScheduleError("stitching disabled by the test")
    monkeypatch.setattr(mapper, "_stitch", no_stitch)
    problem = ffn_stack(4)
    s = map_problem(problem, MapOptions(max_whole_ops=5))
    check_schedule(problem, s)
    assert s.solver == "heft+belady"
    assert s.note.startswith("fallback to heft+belady: CP-SAT: 3 identical blocks of 5 ops")
    assert "no block schedule passes the checker (not replayed: the checker rejects it: " in s.note
    assert "not stitched: stitching disabled by the test; not overlapped: stitching disabled by the test)" in s.note


def test_the_note_names_how_each_side_of_the_blocks_was_scheduled():
    from pimc.mapping.mapper import _edges_note

    assert _edges_note(4, 1, "as their block-0 counterparts", "by heft+belady", default="by heft+belady") == \
        "4 ops before the blocks as their block-0 counterparts and 1 after by heft+belady"
    assert _edges_note(4, 1, "by heft+belady", "by heft+belady", default="x") == \
        "4 ops before and 1 after the blocks by heft+belady"
    assert _edges_note(0, 1, None, "as their block-0 counterparts", default="x") == \
        "0 ops before and 1 after the blocks as their block-0 counterparts"
    assert _edges_note(0, 0, None, None, default="by heft+belady") == "0 ops before and 0 after the blocks by heft+belady"


def test_the_heuristic_pieces_around_the_blocks_are_made_once(monkeypatch):
    from pimc.mapping import mapper

    calls, real = [], mapper._heuristic_piece

    def counted(problem, names, heur, objective):
        calls.append(tuple(names))
        return real(problem, names, heur, objective)
    monkeypatch.setattr(mapper, "_heuristic_piece", counted)
    monkeypatch.setattr(mapper, "_block_like_piece", lambda *a, **k: None)  # both stitches use the heuristic
    s = map_problem(ffn_stack(4), MapOptions(max_whole_ops=5))
    check_schedule(ffn_stack(4), s)
    assert sorted(calls) == [("d3",), ("n0", "g0", "u0", "m0")]  # once per side, not once per stitch
    assert "4 ops before and 1 after the blocks by heft+belady" in s.note

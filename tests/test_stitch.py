"""Stitching identical blocks: each copy of a solved block placed at the earliest offset its
inputs and the machine allow, so a block's weight load overlaps the previous block's compute;
the mapper's choice between the stitched and the replayed schedule (and its fallback when the
checker rejects the stitched one); and a scratchpad target (sram device memories linked to one
DRAM) whose weight loads are schedulable transfers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import pimc
from pimc.mapping import mapper
from pimc.mapping.blocks import find_blocks
from pimc.mapping.checker import check_schedule
from pimc.mapping.evict import sequence_schedule
from pimc.mapping.mapper import MapOptions, baseline, block_problem
from pimc.mapping.problem import LinkCost, MappingProblem, OpNode, Tensor
from pimc.mapping.stitch import Piece, Stitcher, replica_names
from pimc.targets import load_target
from pimc.targets.cost import Cost

MB = 1_000_000


def two_blocks(n: int = 2) -> MappingProblem:
    """a0(w0, x) -> h0 -> a1(w1, h0) -> h1 (... -> h{n-1}) on one core computing from a scratchpad
    of two weights: a 2 MB weight takes 2 s over the 1 MB/s DMA link, an activation (1 kB) 1 ms,
    each op 3 s."""
    tensors = {"x": Tensor("x", 1000, "input")}
    ops, costs = [], {}
    for k in range(n):
        tensors[f"w{k}"] = Tensor(f"w{k}", 2 * MB, "weight")
        tensors[f"h{k}"] = Tensor(f"h{k}", 1000, "output" if k == n - 1 else "activation")
        ops.append(OpNode(f"a{k}", "linear", (f"w{k}", f"h{k - 1}" if k else "x"), (f"h{k}",)))
        costs[(f"a{k}", "core")] = Cost(3.0, 0.0, 0.0)
    dma = LinkCost(1e6, 0.0, 0.0)
    return MappingProblem(
        ops=tuple(ops), tensors=tensors, devices=("core",), memory_of={"core": "spm"},
        capacity_bytes={"spm": 4_100_000, "dram": 10**9}, costs=costs,
        links={("dram", "spm"): dma, ("spm", "dram"): dma}, offchip_memories=frozenset({"dram"}),
        home={t: "dram" for t, x in tensors.items() if x.kind in ("input", "weight")}, spill_to={"spm": "dram"})


def stitched(problem: MappingProblem):
    heur = sequence_schedule(problem, [("a0", "core"), ("a1", "core")])
    sub = block_problem(problem, ["a0"], heur)
    block = sequence_schedule(sub, [("a0", "core")])
    stitcher = Stitcher(problem)
    offsets = []
    for k in range(2):
        ops, tensors = replica_names(problem, ["a0"], [f"a{k}"])
        offsets.append(stitcher.add(Piece(sub, block, ops, tensors)))
    return block, offsets, stitcher.schedule("stitched")


def test_stitched_two_blocks_overlap_the_next_weight_load():
    problem = two_blocks()
    block, offsets, s = stitched(problem)
    # One block: w0 [0, 2], x [2, 2.001], a0 [2.001, 5.001], h0 written back [5.001, 5.002].
    assert block.makespan_s == pytest.approx(5.002, abs=1e-12)
    # The copy reads h0 from DRAM at local 2.0 (after loading w1), h0 is there at 5.002: offset
    # 3.002. Links, core and addresses allow it: w1 streams in [3.002, 5.002] while a0 runs, at a
    # new address (w0 still holds the solved one), so 2 blocks take 3.002 + 5.002 = 8.004 s.
    assert offsets == [0.0, pytest.approx(3.002, abs=1e-12)]
    assert s.makespan_s == pytest.approx(8.004, abs=1e-12)
    assert s.makespan_s < 2 * block.makespan_s
    check_schedule(problem, s)
    w = {r.tensor: r for r in s.residency if r.memory == "spm"}
    assert (w["w0"].offset_bytes, w["w1"].offset_bytes) == (0, 2_002_000)
    assert [(t.tensor, t.start_s) for t in s.transfers if t.dst_memory == "spm"] == [
        ("w0", 0.0), ("x", 2.0), ("w1", pytest.approx(3.002)), ("h0", pytest.approx(5.002))]


def test_stitching_is_deterministic():
    a, b = stitched(two_blocks())[2], stitched(two_blocks())[2]
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())


def solve_blocks(problem: MappingProblem):
    """The mapper's block path on `problem` (four ops: one before, two identical blocks, one after)."""
    blocks = find_blocks(problem)
    assert (blocks.start, blocks.length, blocks.count) == (1, 1, 2)
    return mapper._solve_blocks(problem, blocks, baseline(problem, "heft"), MapOptions(time_limit_s=1.0))


def capture_replays(monkeypatch, slowdown: float = 1.0) -> list:
    """The list receives each replayed schedule of the mapper's blocks; with `slowdown`, the replay
    runs every op that many times longer than its cost (a worse replay)."""
    real, replays = mapper.sequence_schedule, []

    def slow(problem, placement, policy="belady", solver="sequence", **kw):
        if solver == "cpsat-blocks" and slowdown != 1.0:
            kw["op_time"] = lambda o, d: slowdown * problem.costs[(o, d)].latency_s
        s = real(problem, placement, policy, solver, **kw)
        if solver == "cpsat-blocks":
            replays.append(s)
        return s

    monkeypatch.setattr(mapper, "sequence_schedule", slow)
    return replays


def test_mapper_keeps_the_replayed_blocks_when_stitching_is_not_better():
    # Replayed: w0 [0, 2], x, a0 [2.001, 5.001]; w1 loads meanwhile, a1 [5.001, 8.001]; w2 waits for
    # w0's space (a0 done) and w3 for w1's, so a2 [8.001, 11.001], a3 [11.001, 14.001], h3 written
    # back by 14.002. Stitched pieces pass h0..h2 through DRAM (1 ms out, 1 ms in each): 14.008.
    problem = two_blocks(4)
    s, note = solve_blocks(problem)
    check_schedule(problem, s)
    assert s.solver == "cpsat-blocks" and s.makespan_s == pytest.approx(14.002, abs=1e-9)
    assert "replicated and replayed" in note and "(replayed 14.002 s, stitched 14.008 s, overlapped 14.008 s)" in note


def test_mapper_keeps_the_replayed_blocks_on_a_tie(monkeypatch):
    """A stitched schedule exactly as good as the replay (the replay itself) does not replace it."""
    replays = capture_replays(monkeypatch)
    monkeypatch.setattr(mapper, "_stitch", lambda *a, **k: (dataclasses.replace(replays[-1], solver="cpsat-stitched"), ""))
    problem = two_blocks(4)
    s, note = solve_blocks(problem)
    assert s is replays[-1] and s.solver == "cpsat-blocks"
    assert "replicated and replayed" in note and "(replayed 14.002 s, stitched 14.002 s, overlapped 14.002 s)" in note


def test_mapper_keeps_the_stitched_blocks_when_strictly_better(monkeypatch):
    replays = capture_replays(monkeypatch, slowdown=2.0)
    problem = two_blocks(4)
    s, note = solve_blocks(problem)
    check_schedule(problem, s)
    assert replays[-1].makespan_s > 14.008
    assert s.solver == "cpsat-stitched" and s.makespan_s == pytest.approx(14.008, abs=1e-9)
    assert "every block a copy of its schedule" in note


def test_mapper_replays_when_the_checker_rejects_the_stitched_blocks(monkeypatch):
    """A stitched schedule the checker rejects (its last op moved before its input arrives) is not
    kept: the replay is, with a note naming the violation. (A slowed replay would itself be
    rejected now that every candidate is checked: test_overlapped_stitch's corrupted replays.)"""
    replays = capture_replays(monkeypatch)
    real = mapper._stitch

    def corrupt(*a, **k):
        s, edges = real(*a, **k)
        return dataclasses.replace(s, slots={**s.slots, "a3": dataclasses.replace(s.slots["a3"], start_s=0.0, end_s=3.0)}), edges

    monkeypatch.setattr(mapper, "_stitch", corrupt)
    problem = two_blocks(4)
    s, note = solve_blocks(problem)
    assert s is replays[-1] and s.solver == "cpsat-blocks"
    assert "replicated and replayed as early as possible with Belady eviction (replayed 14.002 s; not stitched: " \
           "the checker rejects it: op 'a3' starts at 0.0 before producer 'a2'" in note
    assert "; not overlapped: the checker rejects it: op 'a3' starts at 0.0 before producer 'a2'" in note


SPM_TARGET = Path(__file__).resolve().parents[1] / "bench" / "targets" / "quad-a76-spm.toml"


def test_scratchpad_target_streams_weights_as_transfers(monkeypatch):
    target = load_target(SPM_TARGET)
    import pimc.mapping.from_ir as from_ir

    mapped = []
    real = from_ir.map_problem
    monkeypatch.setattr(from_ir, "map_problem", lambda p, o: (s := real(p, o), mapped.append((p, s)))[0])
    report = pimc.estimate("tiny-llama", target, seq_len=4, context=8)  # every schedule is checked
    assert report.data["kernel"]["latency_s"] > 0 if "kernel" in report.data else report.ttft_s > 0
    p, s = mapped[-1]
    assert p.spill_to == {f"spm{i}": "dram" for i in range(4)}
    weights = [t for t, x in p.tensors.items() if x.kind == "weight"]
    assert weights and all(p.home[t] == "dram" for t in weights)
    streamed = [t for t in s.transfers if t.tensor in weights and t.src_memory == "dram" and t.dst_memory in p.spill_to]
    assert streamed and all(t.bytes == p.tensors[t.tensor].size_bytes and t.end_s > t.start_s for t in streamed)
    assert {t.tensor for t in streamed} == set(weights)  # the cores compute from their scratchpads only

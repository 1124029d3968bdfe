"""COSMA-style off-chip traffic: one accelerator with a scratchpad of budget M, backed by DRAM.

Graphs: decoder blocks of three shapes (decode: weights dominate; short and long prefill:
activations and attention scores dominate), the decode function of the tiny-llama preset and of
one ONNX fixture LLM per architecture (tests/fixtures/onnx; 2 layers, embedding and LM head), and
CNN-like DAGs (residual and inception-like branches). In the LLM graphs an embedding op reads only
the rows it gathers (its output's size), not the whole table; everything else reads whole tensors.

Inputs and weights start in DRAM (loading each once is compulsory), outputs end in DRAM (one
writeback each, compulsory); everything else crossing the scratchpad boundary is non-compulsory:
spills (activations written back), reloads (activations read back) and weight/input re-fetches.
Budgets: M_R (largest single op's inputs + outputs: the least any schedule needs), M_P (minimum
peak footprint: the least scratchpad any topological order runs in without spilling, each tensor
resident from first to last use; exact by search over the graph's down-sets, or marked as the best
of the heuristics' orders if the search is too large) and halfway.
Per (graph, budget): non-compulsory bytes of topological order + LRU, HEFT + Belady and the CP-SAT
mapper (`ilp*` keys: map_problem with objective offchip; its schedule comes from CP-SAT, or from a
heuristic or the least-bytes plan of mapping/traffic_plan.py when that meets the lower bound, and
`ilp_solver` says which), its status, gap and bound; where the baselines' bytes come from (spills / reloads / re-fetches, and how much of it
was caused by evictions for capacity vs for a contiguous range, i.e. fragmentation); % removed vs
topological + LRU (rows where LRU moves nothing non-compulsory are left out of the mean), and at
most how much any schedule could remove: the byte-level bound (mapping/traffic_bound.py: the
least traffic over every op order and eviction, ignoring addresses) is traffic no schedule avoids.
The baselines and the mapper run every op once with its inputs and outputs apart in the scratchpad.
Freedoms they do not take were measured once in the byte-level search (2026-11-21, not kept):
in-place execution of elementwise and row-wise ops (output over a same-size input that dies there)
lowered the bound on 0 of 42 rows (linears and convs set every peak, not those ops), and one-level
rematerialization on none of the 14 non-trivial rows its search finished. Splitting a linear or
conv so its weight streams in tiles would remove more, but changes COSMA's problem: M_R ("the least
any schedule needs") would no longer hold.
Usage: python bench/traffic.py [--json] [--time-limit S] [--graphs SUBSTRING]
"""

from __future__ import annotations

import argparse
from collections import Counter
import dataclasses
import heapq
import json
import random
import time
from pathlib import Path

from pimc.errors import ScheduleError
from pimc.mapping import (
    Cost, LinkCost, MapOptions, MappingProblem, Objective, OpNode, Tensor, check_schedule, map_problem,
)
from pimc.mapping.list_scheduler import heft_placement
from pimc.mapping.mapper import baseline
from pimc.mapping.traffic_bound import scratchpad_traffic

F32 = 4
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "onnx"
MAX_DOWNSETS = 200_000
MAX_STATES = 200_000


def _accelerator(ops, tensors, budget: int = 10**12) -> MappingProblem:
    """One device `acc` computing from scratchpad `spm` (spills to `dram`), 1 us per op, 10 GB/s."""
    link = LinkCost(10e9, 0.0, 10e-12)
    tensors = {t.name: t for t in tensors}
    return MappingProblem(tuple(ops), tensors, ("acc",), {"acc": "spm"}, {"spm": budget, "dram": 10**12},
                          {(o.name, "acc"): Cost(1e-6, 1e-6, 0.0) for o in ops},
                          {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                          home={n: "dram" for n, t in tensors.items() if t.kind in ("input", "weight")},
                          spill_to={"spm": "dram"})


def decoder_block(d: int, seq: int, ffn: int, heads: int = 4) -> MappingProblem:
    """Pre-norm decoder block: q/k/v, scores = q k^T per head, softmax, scores v, output
    projection, residual, gated MLP (up, gate, silu, mul, down), residual; int8 weights."""
    ts, ops = [Tensor("x", seq * d * F32, "input")], []

    def op(name, ins, out, size, kind="activation"):
        ts.append(Tensor(out, size, kind))
        ops.append(OpNode(name, name.split("_")[0], tuple(ins), (out,)))

    def w(name, size):
        ts.append(Tensor(name, size, "weight"))
        return name

    act, wide, scores = seq * d * F32, seq * ffn * F32, heads * seq * seq * F32
    op("norm_1", ["x", w("g1", d * F32)], "h", act)
    for p in "qkv":
        op(f"linear_{p}", ["h", w(f"w{p}", d * d)], p, act)
    op("qk", ["q", "k"], "sc", scores)
    op("softmax", ["sc"], "pr", scores)
    op("pv", ["pr", "v"], "a", act)
    op("linear_o", ["a", w("wo", d * d)], "o", act)
    op("add_1", ["x", "o"], "r", act)
    op("norm_2", ["r", w("g2", d * F32)], "h2", act)
    op("linear_up", ["h2", w("wu", d * ffn)], "u", wide)
    op("linear_gate", ["h2", w("wg", d * ffn)], "g", wide)
    op("silu", ["g"], "s", wide)
    op("mul", ["u", "s"], "m", wide)
    op("linear_down", ["m", w("wd", ffn * d)], "dn", act)
    op("add_2", ["r", "dn"], "y", act, "output")
    return _accelerator(ops, ts)


def llm_decode(spec: str) -> MappingProblem:
    """The decode function of a model (preset name or .onnx file) as the mapper sees it, on one
    accelerator: KV-cache state becomes an output (written back), an embedding reads its rows."""
    from pimc.frontends import read_model
    from pimc.mapping.from_ir import _functions, build_problem
    from pimc.pipeline import graph_passes, target_passes
    from pimc.targets import load_target

    source, target = read_model(spec), load_target("cpu-a76")
    module = source.build(1, 16)
    graph_passes(module, 8, 32)
    target_passes(module, target, "auto")
    fn = next(f for f in _functions(module) if f.sym_name.data == "decode")
    p, _ = build_problem(fn, target)
    tensors = {n: Tensor(n, t.size_bytes, "output" if t.kind == "state" else t.kind) for n, t in p.tensors.items()}
    ops = []
    for o in p.ops:
        if o.kind == "llm.embedding":
            table = next(t for t in o.inputs if tensors[t].kind == "weight")
            rows = f"rows:{o.name}:{table}"
            tensors[rows] = Tensor(rows, sum(tensors[t].size_bytes for t in o.outputs), "weight")
            o = dataclasses.replace(o, inputs=tuple(rows if t == table else t for t in o.inputs))
        ops.append(o)
    used = {t for o in ops for t in (*o.inputs, *o.outputs)}
    return _accelerator(ops, [t for n, t in tensors.items() if n in used])


def cnn(seed: int, blocks: int) -> MappingProblem:
    """Residual blocks (conv-conv-add with a skip) and inception-like branches, random channel sizes;
    int8 activations (8x8 pixels) and 3x3 kernels (in channels x out channels x 9 bytes)."""
    r = random.Random(seed)
    hw = 8 * 8
    ts, ops = [Tensor("img", hw * 16, "input")], []
    prev, n = "img", 0

    def conv(src, ch):
        nonlocal n
        n += 1
        channels = next(t.size_bytes for t in ts if t.name == src) // hw
        ts.append(Tensor(f"k{n}", channels * ch * 9, "weight"))
        ts.append(Tensor(f"f{n}", hw * ch, "activation"))
        ops.append(OpNode(f"conv_{n}", "conv", (src, f"k{n}"), (f"f{n}",)))
        return f"f{n}"

    for b in range(blocks):
        ch = r.choice((16, 32, 48))
        if b % 2 == 0:  # residual
            a = conv(prev, ch)
            c = conv(a, 16)
            n += 1
            ts.append(Tensor(f"f{n}", hw * 16, "activation"))
            ops.append(OpNode(f"add_{n}", "add", (prev, c), (f"f{n}",)))
            prev = f"f{n}"
        else:  # branches joined by a concat-like op
            outs = [conv(prev, ch), conv(conv(prev, ch), 16), conv(prev, 16)]
            n += 1
            ts.append(Tensor(f"f{n}", hw * 16, "activation"))
            ops.append(OpNode(f"cat_{n}", "concat", tuple(outs), (f"f{n}",)))
            prev = f"f{n}"
    ts = [Tensor(t.name, t.size_bytes, "output") if t.name == prev else t for t in ts]
    return _accelerator(ops, ts)


FIXTURE_LLMS = ("llama_dynamo_op18", "gpt2_torchscript_op14", "qwen2_dynamo_op21", "phi3_dynamo_op18",
                "gemma_dynamo_op22", "mistral_torchscript_op14", "bitnet_dynamo_op18")

GRAPHS = {
    "block decode (d=256, seq=1)": lambda: decoder_block(256, 1, 688),
    "block prefill (d=64, seq=8)": lambda: decoder_block(64, 8, 172),
    "block prefill (d=64, seq=32)": lambda: decoder_block(64, 32, 172),
    "tiny-llama decode": lambda: llm_decode("tiny-llama"),
    **{f"{name.split('_')[0]} fixture decode": (lambda n=name: llm_decode(str(FIXTURES / f"{n}.onnx")))
       for name in FIXTURE_LLMS},
    "cnn-a (4 blocks)": lambda: cnn(1, 4),
    "cnn-b (6 blocks)": lambda: cnn(2, 6),
    "cnn-c (10 blocks)": lambda: cnn(3, 10),
}


# -- budgets ------------------------------------------------------------------------------------

def m_r(p: MappingProblem) -> int:
    """The largest single op's inputs + outputs: no schedule runs in less."""
    return max(sum(p.tensors[t].size_bytes for t in {*op.inputs, *op.outputs}) for op in p.ops)


def peak_of_order(p: MappingProblem, order: list[str]) -> int:
    """Scratchpad peak when each tensor arrives just before its first use and leaves after its last."""
    pos = {o: i for i, o in enumerate(order)}
    first, last = {}, {}
    for o in order:
        for t in {*p.op_by_name[o].inputs, *p.op_by_name[o].outputs}:
            first.setdefault(t, pos[o])
            last[t] = pos[o]
    return max(sum(p.tensors[t].size_bytes for t in first if first[t] <= i <= last[t]) for i in range(len(order)))


def min_peak(p: MappingProblem) -> tuple[int, bool]:
    """(M_P, exact): the minimum over topological orders of peak_of_order, by a bottleneck
    shortest path over the down-sets of the op DAG (a state = the set of ops already run; the
    tensors resident then are those touched and not finished). If the graph has more than
    MAX_DOWNSETS down-sets, the best of the topological and HEFT orders (exact=False)."""
    names = [o.name for o in p.ops]
    bit = {n: 1 << i for i, n in enumerate(names)}
    pred = [sum(bit[u] for u in p.graph.predecessors(n)) for n in names]
    uses = {t: sum(bit[o] for o in us) for t, us in p.uses.items() if us}
    size = {t: p.tensors[t].size_bytes for t in uses}
    operands = [tuple({*o.inputs, *o.outputs}) for o in p.ops]
    full = (1 << len(names)) - 1
    best = {0: 0}
    heap = [(0, 0, 0)]  # (peak so far, state, resident bytes)
    done = set()
    while heap:
        peak, state, resident = heapq.heappop(heap)
        if state in done:
            continue
        if state == full:
            return peak, True
        done.add(state)
        if len(done) > MAX_DOWNSETS:
            break
        for i in range(len(names)):
            b = 1 << i
            if state & b or pred[i] & ~state:
                continue
            new = state | b
            step, after = resident, resident
            for t in operands[i]:
                u = uses[t]
                was = bool(u & state) and (u & state) != u
                if not was:
                    step += size[t]
                is_ = (u & new) != u
                after += (size[t] if is_ else 0) - (size[t] if was else 0)
            cand = max(peak, step)
            if cand < best.get(new, 1 << 62):
                best[new] = cand
                heapq.heappush(heap, (cand, new, after))
    orders = [names, [o for o, _ in heft_placement(p)]]
    return min(peak_of_order(p, o) for o in orders), False


def with_budget(p: MappingProblem, budget: int) -> MappingProblem:
    return dataclasses.replace(p, capacity_bytes={**p.capacity_bytes, "spm": budget})


# -- measuring ----------------------------------------------------------------------------------

def breakdown(p: MappingProblem, s) -> dict[str, int]:
    """Non-compulsory bytes of a schedule by kind: spills (spm->dram beyond each output's one
    writeback), reloads (activations back into spm) and re-fetches (weights/inputs loaded again)."""
    out = {"spill": 0, "reload": 0, "refetch": 0}
    seen: set[tuple[str, str]] = set()
    for tr in sorted(s.transfers, key=lambda t: (t.start_s, t.tensor)):
        kind = p.tensors[tr.tensor].kind
        first = (tr.tensor, tr.dst_memory) not in seen
        seen.add((tr.tensor, tr.dst_memory))
        if tr.dst_memory == "dram":
            if not (first and kind == "output"):
                out["spill"] += tr.bytes
        elif kind in ("input", "weight"):
            if not first:
                out["refetch"] += tr.bytes
        else:
            out["reload"] += tr.bytes
    return out


BASELINES = {"lru": "topo-lru", "belady": "heft"}  # row key -> mapper.baseline name


def _baseline(q: MappingProblem, key: str) -> dict:
    """topo+LRU or HEFT+Belady (the mapper's own baselines): the schedule and why it evicted."""
    stats: dict[str, int] = {}
    s = baseline(q, BASELINES[key], stats=stats)
    check_schedule(q, s)
    return {"schedule": s, "why": {k: stats[k] for k in ("bytes_capacity", "bytes_fragmentation",
                                                        "evictions_capacity", "evictions_fragmentation")}}


def compulsory_bytes(p: MappingProblem) -> int:
    """Each input and weight loaded once, each output written back once."""
    return sum(t.size_bytes for n, t in p.tensors.items() if p.uses[n] and t.kind in ("input", "weight", "output"))


def measure(name: str, p: MappingProblem, budget_name: str, budget: int, time_limit: float) -> dict:
    q = with_budget(p, budget)
    compulsory = compulsory_bytes(q)
    exact = scratchpad_traffic(q, max_states=MAX_STATES)
    row = {"graph": name, "ops": len(q.ops), "budget": budget_name, "budget_bytes": budget,
           "compulsory_bytes": compulsory, "bytes_bound": None if exact is None else exact - compulsory}
    for key in ("lru", "belady"):
        try:
            b = _baseline(q, key)
            nc = int(b["schedule"].offchip_bytes(q)) - compulsory
            parts = breakdown(q, b["schedule"])
            assert sum(parts.values()) == nc, (name, key, parts, nc)
            row[key], row[f"{key}_parts"], row[f"{key}_why"] = nc, parts, b["why"]
        except ScheduleError as e:
            row[key], row[f"{key}_error"] = None, str(e)
    start = time.perf_counter()
    try:
        s = map_problem(q, MapOptions(objective=Objective("offchip"), time_limit_s=time_limit,
                                      max_whole_ops=10_000, max_reloads=2))
        check_schedule(q, s)
        nc = int(s.offchip_bytes(q)) - compulsory
        row.update(ilp=nc, ilp_parts=breakdown(q, s), ilp_status=s.status,
                   ilp_gap=None if s.gap is None else float(f"{s.gap:.3g}"),
                   ilp_bound=None if s.bound is None else max(0, int(s.bound) - compulsory),
                   ilp_solver=s.solver)
    except ScheduleError as e:
        row.update(ilp=None, ilp_error=str(e))
    row["ilp_s"] = round(time.perf_counter() - start, 2)
    lru, ilp, best = row.get("lru"), row.get("ilp"), row["bytes_bound"]
    row["removed_pct"] = None if not lru or ilp is None else round(100.0 * (lru - ilp) / lru, 1)
    row["removable_pct"] = None if not lru or best is None else round(100.0 * (lru - best) / lru, 1)
    return row


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 1) if values else None


def _parts(row: dict, key: str) -> str:
    if row.get(key) is None:
        return "-"
    p, w = row[f"{key}_parts"], row.get(f"{key}_why")
    text = f"sp {p['spill']} rl {p['reload']} rf {p['refetch']}"
    if w:
        text += f"; frag {w['bytes_fragmentation']} B/{w['evictions_fragmentation']} ev"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT deterministic time per solve")
    ap.add_argument("--graphs", default="", help="only graphs whose name contains this")
    args = ap.parse_args()
    rows, budgets = [], {}
    if not args.json:
        print(f"{'graph':<30} {'budget':<5} {'bytes':>8} {'M_P?':<5} {'lru':>7} {'belady':>7} {'mapper':>7} "
              f"{'bound':>7} {'status':<9} {'gap':>6} {'s':>6} {'removed':>7} {'max':>6}  lru: spill/reload/refetch; fragmentation")
    for name, make in GRAPHS.items():
        if args.graphs not in name:
            continue
        p = make()
        lo = m_r(p)
        hi, exact = min_peak(p)
        budgets[name] = {"M_R": lo, "M_P": hi, "M_P_exact": exact}
        for budget_name, budget in (("M_R", lo), ("half", (lo + hi) // 2), ("M_P", hi)):
            r = measure(name, p, budget_name, budget, args.time_limit)
            r["M_P_exact"] = exact
            rows.append(r)
            if not args.json:
                gap = "-" if r.get("ilp_gap") is None else f"{r['ilp_gap']:.3f}"
                print(f"{r['graph']:<30} {r['budget']:<5} {r['budget_bytes']:>8} {'exact' if exact else 'ub':<5} "
                      f"{r['lru']!s:>7} {r['belady']!s:>7} {r['ilp']!s:>7} {r.get('ilp_bound')!s:>7} "
                      f"{r.get('ilp_status', 'none')!s:<9} {gap:>6} {r['ilp_s']:>6} "
                      f"{'-' if r['removed_pct'] is None else str(r['removed_pct']) + '%':>7} "
                      f"{'-' if r['removable_pct'] is None else str(r['removable_pct']) + '%':>6}  {_parts(r, 'lru')}",
                      flush=True)
    pcts = [r["removed_pct"] for r in rows if r["removed_pct"] is not None]
    per_budget = {}
    for b in ("M_R", "half", "M_P"):
        v = [r["removed_pct"] for r in rows if r["budget"] == b and r["removed_pct"] is not None]
        per_budget[b] = round(sum(v) / len(v), 1) if v else None
    lru_parts = {k: sum(r["lru_parts"][k] for r in rows if r.get("lru_parts")) for k in ("spill", "reload", "refetch")}
    lru_why = {k: sum(r["lru_why"][k] for r in rows if r.get("lru_why")) for k in ("bytes_capacity", "bytes_fragmentation")}
    out = {"rows": rows, "removed_pct_mean": round(sum(pcts) / len(pcts), 1) if pcts else None,
           "rows_in_mean": len(pcts), "rows_total": len(rows), "per_budget": per_budget,
           "removable_pct_mean": _mean([r["removable_pct"] for r in rows if r["removed_pct"] is not None]),
           "ilp_optimal_rows": sum(1 for r in rows if r.get("ilp_status") == "OPTIMAL"),
           "ilp_solver_rows": dict(sorted(Counter(r.get("ilp_solver") for r in rows if r.get("ilp_solver")).items())),
           "ilp_missing_rows": sum(1 for r in rows if r.get("ilp") is None),
           "lru_noncompulsory_by_kind": lru_parts, "lru_noncompulsory_by_cause": lru_why,
           "time_limit_s": args.time_limit}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"removed vs topological+LRU: mean {out['removed_pct_mean']}% over {len(pcts)} of {len(rows)} rows "
              f"(the rest: LRU moves nothing non-compulsory); per budget {per_budget}; at most "
              f"{out['removable_pct_mean']}% is removable (byte-level bound: traffic no schedule avoids); "
              f"mapper OPTIMAL on {out['ilp_optimal_rows']} rows, no result on {out['ilp_missing_rows']}; "
              f"schedules by {out['ilp_solver_rows']}")
        print(f"LRU's non-compulsory bytes by kind {lru_parts}; by cause of the eviction {lru_why} "
              f"(fragmentation: evicted although the free bytes sufficed, for lack of a contiguous range)")


if __name__ == "__main__":
    main()

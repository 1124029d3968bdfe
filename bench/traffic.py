"""COSMA-style off-chip traffic: one accelerator with a scratchpad of budget M, backed by DRAM.

Graphs: transformer blocks of two sizes, the tiny-llama fixture's decode function (all of it), and
CNN-like DAGs (residual and branching). Inputs and weights start in DRAM (loading each once is
compulsory), outputs end in DRAM (one writeback each, compulsory); everything else that crosses
the scratchpad boundary is non-compulsory: spills, reloads, reloads of weights.
Budgets: M_R (largest single op's inputs + outputs), M_P (peak footprint of the best of the
topological, HEFT and CP-SAT-latency orders without any spill: an upper bound on the true minimum
peak) and halfway. Per (graph, budget): non-compulsory bytes of topological order + LRU, HEFT +
Belady and the CP-SAT mapper (objective offchip, warm start = the better heuristic); % removed vs
topological + LRU (rows where LRU moves nothing non-compulsory are left out of the mean).
Usage: python bench/traffic.py [--json] [--time-limit S]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from pimc.errors import ScheduleError
from pimc.mapping import Cost, LinkCost, MapOptions, MappingProblem, Objective, OpNode, Tensor, baseline, check_schedule, map_problem
from pimc.mapping.bounds import lower_bound

F32 = 4


def _accelerator(ops, tensors, budget: int = 10**12) -> MappingProblem:
    """One device `acc` computing from scratchpad `spm` (spills to `dram`), 1 us per op, 10 GB/s."""
    link = LinkCost(10e9, 0.0, 10e-12)
    tensors = {t.name: t for t in tensors}
    return MappingProblem(tuple(ops), tensors, ("acc",), {"acc": "spm"}, {"spm": budget, "dram": 10**12},
                          {(o.name, "acc"): Cost(1e-6, 1e-6, 0.0) for o in ops},
                          {("spm", "dram"): link, ("dram", "spm"): link}, frozenset({"dram"}),
                          home={n: "dram" for n, t in tensors.items() if t.kind in ("input", "weight")},
                          spill_to={"spm": "dram"})


def transformer_block(d: int, seq: int, ffn: int) -> MappingProblem:
    ts, ops = [Tensor("x", seq * d * F32, "input")], []

    def op(name, ins, out, size, kind="activation"):
        ts.append(Tensor(out, size, kind))
        ops.append(OpNode(name, name.split("_")[0], tuple(ins), (out,)))

    def w(name, size):
        ts.append(Tensor(name, size, "weight"))
        return name

    act = seq * d * F32
    op("norm_1", ["x", w("g1", d * F32)], "h", act)
    for p in "qkv":
        op(f"linear_{p}", ["h", w(f"w{p}", d * d)], p, act)  # int8 weights
    op("attention", ["q", "k", "v"], "a", act)
    op("linear_o", ["a", w("wo", d * d)], "o", act)
    op("add_1", ["x", "o"], "r", act)
    op("norm_2", ["r", w("g2", d * F32)], "h2", act)
    op("linear_up", ["h2", w("wu", d * ffn)], "u", seq * ffn * F32)
    op("linear_gate", ["h2", w("wg", d * ffn)], "g", seq * ffn * F32)
    op("silu", ["g"], "s", seq * ffn * F32)
    op("mul", ["u", "s"], "m", seq * ffn * F32)
    op("linear_down", ["m", w("wd", ffn * d)], "dn", act)
    op("add_2", ["r", "dn"], "y", act, "output")
    return _accelerator(ops, ts)


def tiny_llama_decode() -> MappingProblem:
    """The tiny-llama fixture's decode function as the mapper sees it, on one accelerator."""
    from pimc.frontends import read_model
    from pimc.mapping.from_ir import _functions, build_problem
    from pimc.pipeline import graph_passes, target_passes
    from pimc.targets import load_target

    source, target = read_model("tiny-llama"), load_target("cpu-a76")
    module = source.build(1, 16)
    graph_passes(module, 8, 32)
    target_passes(module, target, "auto")
    fn = next(f for f in _functions(module) if f.sym_name.data == "decode")
    p, _ = build_problem(fn, target)
    tensors = [Tensor(t.name, t.size_bytes, "output" if t.kind == "state" else t.kind) for t in p.tensors.values()]
    return _accelerator(p.ops, tensors)


def cnn(seed: int, blocks: int) -> MappingProblem:
    """Residual blocks (conv-conv-add with a skip) and inception-like branches, random channel sizes."""
    r = random.Random(seed)
    hw = 8 * 8
    ts, ops = [Tensor("img", hw * 16, "input")], []
    prev, n = "img", 0

    def conv(src, ch):
        nonlocal n
        n += 1
        ts.append(Tensor(f"k{n}", ch * 16 * 9, "weight"))
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


GRAPHS = {
    "transformer-s (d=64, seq=8)": lambda: transformer_block(64, 8, 172),
    "transformer-m (d=128, seq=16)": lambda: transformer_block(128, 16, 344),
    "tiny-llama decode": tiny_llama_decode,
    "cnn-a (4 blocks)": lambda: cnn(1, 4),
    "cnn-b (6 blocks)": lambda: cnn(2, 6),
}


def m_r(p: MappingProblem) -> int:
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


def m_p(p: MappingProblem) -> int:
    orders = [[o.name for o in p.ops], [s.op for s in baseline(p, "heft").ops_in_order()]]
    return min(peak_of_order(p, o) for o in orders)


def with_budget(p: MappingProblem, budget: int) -> MappingProblem:
    import dataclasses
    return dataclasses.replace(p, capacity_bytes={**p.capacity_bytes, "spm": budget})


def measure(name: str, p: MappingProblem, budget_name: str, budget: int, time_limit: float) -> dict:
    q = with_budget(p, budget)
    compulsory = lower_bound(q, Objective("offchip"))
    row = {"graph": name, "ops": len(q.ops), "budget": budget_name, "budget_bytes": budget, "compulsory_bytes": compulsory}
    for key, solver in (("lru", "topo-lru"), ("belady", "heft")):
        try:
            s = baseline(q, solver)
            check_schedule(q, s)
            row[key] = s.offchip_bytes(q) - compulsory
        except ScheduleError as e:
            row[key], row[f"{key}_error"] = None, str(e)
    start = time.perf_counter()
    try:
        s = map_problem(q, MapOptions(objective=Objective("offchip"), time_limit_s=time_limit, max_whole_ops=10_000, max_reloads=2))
        check_schedule(q, s)
        row.update(ilp=s.offchip_bytes(q) - compulsory, ilp_status=s.status, ilp_gap=s.gap, ilp_solver=s.solver)
    except ScheduleError as e:
        row.update(ilp=None, ilp_error=str(e))
    row["ilp_s"] = round(time.perf_counter() - start, 2)
    lru, ilp = row.get("lru"), row.get("ilp")
    row["removed_pct"] = None if not lru or ilp is None else round(100.0 * (lru - ilp) / lru, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT deterministic time per solve")
    args = ap.parse_args()
    rows = []
    for name, make in GRAPHS.items():
        p = make()
        lo, hi = m_r(p), m_p(p)
        hi = max(hi, lo)
        for budget_name, budget in (("M_R", lo), ("half", (lo + hi) // 2), ("M_P", hi)):
            rows.append(measure(name, p, budget_name, budget, args.time_limit))
            if not args.json:
                r = rows[-1]
                print(f"{r['graph']:<30} {r['budget']:<4} {r['budget_bytes']:>9} lru {r['lru']!s:>9} belady {r['belady']!s:>9} "
                      f"ilp {r['ilp']!s:>9} ({r.get('ilp_status')}, gap {r.get('ilp_gap')}, {r['ilp_s']} s) removed {r['removed_pct']}%",
                      flush=True)
    pcts = [r["removed_pct"] for r in rows if r["removed_pct"] is not None]
    out = {"rows": rows, "removed_pct_mean": round(sum(pcts) / len(pcts), 1) if pcts else None,
           "rows_in_mean": len(pcts),
           "per_budget": {b: (round(sum(v) / len(v), 1) if (v := [r["removed_pct"] for r in rows if r["budget"] == b and r["removed_pct"] is not None]) else None)
                          for b in ("M_R", "half", "M_P")}}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"removed vs topological+LRU: mean {out['removed_pct_mean']}% over {len(pcts)} rows; per budget {out['per_budget']}")


if __name__ == "__main__":
    main()

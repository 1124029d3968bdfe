"""Heterogeneous win: llama2-7b decode on edge-soc against each of its devices alone.

Each "alone" target is edge-soc restricted to that device (same numbers, its memory): the CPU, the
FPGA, the PUD modules with the CPU that hosts them (PUD runs only GeMVs; the host encodes,
aggregates and runs every other op), the crossbars with the CPU (crossbars run only linears).
Weights W4 (group 128), activations A8, so every device can run the linears. Prefill 128 tokens,
decode at context 256, priced by `pimc.estimate` with the mapper `map_and_lower` uses. Ratios are
mix / alone for tokens/s and alone / mix for J/token: above 1 means the mix is better.

Two comparisons. At one operating point (the mapper's latency objective, pimc's default) the
mix must be faster and use less energy than each device alone. Over operating points (each
configuration mapped for latency and for energy) the mix's fastest must beat each one's fastest
and its most frugal each one's most frugal: the ends of the mix's trade-off reach past theirs.

Usage: python bench/hetero.py [--json] [--wbits 4] [--abits 8] [--group 128] [--fuse]
"""

from __future__ import annotations

import argparse
import json
import time

import pimc
from pimc.targets import load_target

ALONE = {"cpu": ["cpu"], "fpga": ["fpga"], "pud+host": ["pud", "cpu"], "xbar+cpu": ["xbar", "cpu"]}


OBJECTIVES = ("latency", "energy")
MARGIN = 0.01
"""A ratio within 1% of 1 is a tie, not a win: the mapper's solves stop at a time limit, and the mix,
which may use every device's placement, could only lose to a subset through that slack."""


def beats(ratio: float) -> bool:
    return ratio > 1 + MARGIN


def measure(target, args, objective: str = "latency") -> dict:
    start = time.perf_counter()
    report = pimc.estimate("llama2-7b", target, seq_len=128, context=256, wbits=args.wbits, abits=args.abits,
                           group=args.group, fuse=args.fuse, objective=objective)
    decode = report.data["decode"]
    linears = [r for r in report.data["placement"]["decode"] if r["kind"] == "llm.linear"]
    return {
        "target": target.name,
        "objective": objective,
        "tokens_per_s": report.tokens_per_s,
        "joules_per_token": report.joules_per_token,
        "ttft_s": report.ttft_s,
        "decode_offchip_bytes": decode["offchip_bytes"],
        "decode_linears_by_device": {d: sum(r["device"] == d for r in linears) for d in sorted({r["device"] for r in linears})},
        "wall_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--wbits", type=float, default=4)
    parser.add_argument("--abits", type=float, default=8)
    parser.add_argument("--group", type=int, default=128)
    parser.add_argument("--fuse", action="store_true", help="fuse op chains where cheaper (pimc --fuse)")
    args = parser.parse_args()
    edge = load_target("edge-soc")
    configs = {"mix": edge, **{label: edge.restricted_to(devices, f"edge-soc[{label}]") for label, devices in ALONE.items()}}
    runs = {label: {o: measure(t, args, o) for o in OBJECTIVES} for label, t in configs.items()}
    mix = runs["mix"]["latency"]
    mix_fastest = max(runs["mix"].values(), key=lambda r: r["tokens_per_s"])
    mix_frugal = min(runs["mix"].values(), key=lambda r: r["joules_per_token"])
    rows = []
    for label in ALONE:
        alone = dict(runs[label]["latency"])
        alone["speedup"] = mix["tokens_per_s"] / alone["tokens_per_s"]
        alone["energy_ratio"] = alone["joules_per_token"] / mix["joules_per_token"]
        alone["mix_beats"] = beats(alone["speedup"]) and beats(alone["energy_ratio"])
        fastest = max(runs[label].values(), key=lambda r: r["tokens_per_s"])
        frugal = min(runs[label].values(), key=lambda r: r["joules_per_token"])
        alone["best_speedup"] = mix_fastest["tokens_per_s"] / fastest["tokens_per_s"]
        alone["best_energy_ratio"] = frugal["joules_per_token"] / mix_frugal["joules_per_token"]
        alone["mix_frontier_beats"] = beats(alone["best_speedup"]) and beats(alone["best_energy_ratio"])
        alone["energy_objective"] = runs[label]["energy"]
        rows.append({"alone": label, **alone})
    result = {"model": "llama2-7b", "wbits": args.wbits, "abits": args.abits, "group": args.group, "fuse": args.fuse,
              "mix": mix, "mix_energy_objective": runs["mix"]["energy"], "alone": rows,
              "mix_beats_all": all(r["mix_beats"] for r in rows),
              "mix_frontier_beats_all": all(r["mix_frontier_beats"] for r in rows)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"llama2-7b decode (context 256), W{args.wbits:g}A{args.abits:g} group {args.group}"
          f"{', fused' if args.fuse else ''}, mapper: pimc default (CP-SAT, 1 s deterministic limit per solve)")
    print(f"{'target':<22} {'objective':<9} {'tok/s':>8} {'J/token':>9} {'mix speedup':>12} {'mix J saving':>13}  decode linears")
    for label in ("mix", *ALONE):
        for o in OBJECTIVES:
            r = runs[label][o]
            row = next((x for x in rows if x["alone"] == label), None)
            ratios = (f"{row['speedup']:>11.3f}x {row['energy_ratio']:>12.3f}x" if row and o == "latency" else f"{'':>12} {'':>13}")
            print(f"{r['target']:<22} {o:<9} {r['tokens_per_s']:>8.3f} {r['joules_per_token']:>9.4f} {ratios}  {r['decode_linears_by_device']}")
    print(f"at one operating point (latency objective) the mix is faster and uses less energy (by > {MARGIN:.0%}) than every device alone:",
          "yes" if result["mix_beats_all"] else "NO")
    print("over operating points, mix's fastest / most frugal against each one's fastest / most frugal:")
    for r in rows:
        marks = ["" if beats(x) else " (tie)" for x in (r["best_speedup"], r["best_energy_ratio"])]
        print(f"  {r['alone']:<10} {r['best_speedup']:.3f}x tokens/s{marks[0]}, {r['best_energy_ratio']:.3f}x J/token{marks[1]}")
    print(f"the mix's trade-off reaches past every device alone (by > {MARGIN:.0%}) at both ends:", "yes" if result["mix_frontier_beats_all"] else "NO")


if __name__ == "__main__":
    main()

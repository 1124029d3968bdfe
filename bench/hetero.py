"""Heterogeneous win: llama2-7b decode on edge-soc against each of its devices alone.

Each "alone" target is edge-soc restricted to that device (same numbers, its memory): the CPU, the
FPGA, the PUD modules with the CPU that hosts them (PUD runs only GeMVs; the host encodes,
aggregates and runs every other op), the crossbars with the CPU (crossbars run only linears).
Weights W4 (group 128), activations A8, so every device can run the linears. Prefill 128 tokens,
decode at context 256, priced by `pimc.estimate` with the mapper `map_and_lower` uses. Ratios are
mix / alone for tokens/s and alone / mix for J/token: above 1 means the mix is better.

Usage: python bench/hetero.py [--json] [--wbits 4] [--abits 8] [--group 128] [--fuse]
"""

from __future__ import annotations

import argparse
import json
import time

import pimc
from pimc.targets import load_target

ALONE = {"cpu": ["cpu"], "fpga": ["fpga"], "pud+host": ["pud", "cpu"], "xbar+cpu": ["xbar", "cpu"]}


def measure(target, args) -> dict:
    start = time.perf_counter()
    report = pimc.estimate("llama2-7b", target, seq_len=128, context=256, wbits=args.wbits, abits=args.abits,
                           group=args.group, fuse=args.fuse)
    decode = report.data["decode"]
    linears = [r for r in report.data["placement"]["decode"] if r["kind"] == "llm.linear"]
    return {
        "target": target.name,
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
    mix = measure(edge, args)
    rows = []
    for label, devices in ALONE.items():
        alone = measure(edge.restricted_to(devices, f"edge-soc[{label}]"), args)
        alone["speedup"] = mix["tokens_per_s"] / alone["tokens_per_s"]
        alone["energy_ratio"] = alone["joules_per_token"] / mix["joules_per_token"]
        alone["mix_beats"] = alone["speedup"] > 1 and alone["energy_ratio"] > 1
        rows.append({"alone": label, **alone})
    result = {"model": "llama2-7b", "wbits": args.wbits, "abits": args.abits, "group": args.group, "fuse": args.fuse,
              "mix": mix, "alone": rows, "mix_beats_all": all(r["mix_beats"] for r in rows)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"llama2-7b decode (context 256), W{args.wbits:g}A{args.abits:g} group {args.group}"
          f"{', fused' if args.fuse else ''}, mapper: pimc default (CP-SAT, 1 s deterministic limit per solve)")
    print(f"{'target':<22} {'tok/s':>8} {'J/token':>9} {'mix speedup':>12} {'mix J saving':>13}  decode linears")
    print(f"{mix['target']:<22} {mix['tokens_per_s']:>8.3f} {mix['joules_per_token']:>9.3f} {'':>12} {'':>13}  {mix['decode_linears_by_device']}")
    for r in rows:
        print(f"{r['target']:<22} {r['tokens_per_s']:>8.3f} {r['joules_per_token']:>9.3f} {r['speedup']:>11.2f}x "
              f"{r['energy_ratio']:>12.2f}x  {r['decode_linears_by_device']}")
    print("mix beats every device alone (tokens/s and J/token):", "yes" if result["mix_beats_all"] else "NO")


if __name__ == "__main__":
    main()

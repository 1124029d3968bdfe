"""Reproduce MVDRAM (Kubo et al., arXiv 2503.23817) with pimc's DRAM-PUD model: no per-point fitting.

    .venv/bin/python bench/reproduce_mvdram.py [--json out.json]

1. GeMV 32000x4096 (Llama-2-7B output layer), weight bits 1..8, on `ddr4-pud-x4` (4x DDR4-2400 +
   i7-9700K host) vs the llama.cpp baseline on `cpu-i7-9700k`: CPU time, PUD time (in-DRAM + host),
   speedup and energy ratio beside the published numbers.
2. End-to-end decode of llama2-13b at 2-bit and 4-bit weights: tokens/s and J/token on both targets.

The experiment (formats, activation widths, scales, context) is defined once in
`pimc.studies.mvdram`, shared with examples/mvdram.py; its docstring lists the assumptions.
Sensitivity rows: 8-bit activations on PUD (WxA8), group-128 scales on both sides, what the host
package draws while the modules compute (the model: its uncore), and the PUD system mapped for
energy (every decode linear on PUD, as the paper runs it) instead of latency.
"""

from __future__ import annotations

import argparse
import json
import time

from pimc.studies.mvdram import (
    GEMV, PER_CHANNEL, PUBLISHED_E2E, PUBLISHED_GEMV, PUBLISHED_GEMV_ENERGY, TOLERANCE, deviation, e2e_row, gemv_row,
    group_label, host_wait_ratios, pud_act_bits, shape_rows,
)


def verdict(got: float, want: float) -> str:
    err = deviation(got, want)
    return f"{err:+.0%} {'ok' if abs(err) <= TOLERANCE else 'OFF'}"


def main_setting(r: dict) -> bool:
    return (r["abits"] == pud_act_bits(r["wbits"]) and r["group"] == group_label(PER_CHANNEL)
            and r.get("objective", "latency") == "latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()

    gemv = [gemv_row(b) for b in range(1, 9)]
    gemv_a8 = [gemv_row(b, 8) for b in (2, 4, 6)]
    gemv_g128 = [gemv_row(b, group=128) for b in (2, 4)]
    print(f"## GeMV {GEMV} (Llama-2-7B output layer), ddr4-pud-x4 vs llama.cpp on cpu-i7-9700k\n")
    print("| W/A bits (PUD) | PUD scales | CPU format | CPU ms | PUD ms (in-DRAM + host) | tasks | row ops | speedup | energy ratio | published |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in gemv + gemv_a8 + gemv_g128:
        pub = PUBLISHED_GEMV.get(r["wbits"]) if main_setting(r) else None
        note = (f"CPU {pub['cpu_ms']} ms, MVDRAM {pub['pud_ms']} ({pub['dram_ms']} + {pub['host_ms']}) ms, {pub['speedup']}x"
                if pub else ("parity or better below 4-bit; gain shrinks with bits" if main_setting(r) else "sensitivity"))
        print(f"| W{r['wbits']}A{r['abits']} | {r['group']} | {r['cpu_format']} | {r['cpu_ms']:.3f} | "
              f"{r['pud_ms']:.3f} ({r['dram_ms']:.3f} + {r['host_ms']:.3f}) | {r['tasks']} | {r['row_ops']:,} | "
              f"{r['speedup']:.2f}x | {r['energy_ratio']:.2f}x | {note} |")

    two = next(r for r in gemv if r["wbits"] == 2)
    pub = PUBLISHED_GEMV[2]
    print("\n### 2-bit GeMV against the published figures (tolerance ±25%)\n")
    print("| quantity | pimc | published | deviation |")
    print("|---|---|---|---|")
    for label, got, want in (
        ("speedup over the CPU (both modelled)", two["speedup"], pub["speedup"]),
        ("MVDRAM GeMV time, ms", two["pud_ms"], pub["pud_ms"]),
        ("in-DRAM time, ms", two["dram_ms"], pub["dram_ms"]),
        ("host time, ms", two["host_ms"], pub["host_ms"]),
        ("CPU GeMV time (llama.cpp Q2_K), ms", two["cpu_ms"], pub["cpu_ms"]),
    ):
        print(f"| {label} | {got:.3f} | {want} | {verdict(got, want)} |")
    best = max(gemv, key=lambda r: r["energy_ratio"])
    print(f"| GeMV energy ratio, best width (W{best['wbits']}A{best['abits']}) | {best['energy_ratio']:.2f} | "
          f"{PUBLISHED_GEMV_ENERGY} (up to) | {verdict(best['energy_ratio'], PUBLISHED_GEMV_ENERGY)} |")
    shapes = shape_rows(2)
    on_pud = {name: r for name, r in shapes.items() if r["on_pud"]}
    top_speed = max(on_pud.items(), key=lambda kv: kv[1]["speedup"])
    top_energy = max(on_pud.items(), key=lambda kv: kv[1]["energy_ratio"])
    print(f"| GeMV speedup, best of {len(shapes)} shapes ({top_speed[0]}) | {top_speed[1]['speedup']:.2f} | "
          f"{pub['speedup']} is the 32000x4096 shape's (row 1) | not compared |")
    print(f"| GeMV energy ratio, best of {len(shapes)} shapes ({top_energy[0]}) | {top_energy[1]['energy_ratio']:.2f} | "
          f"{PUBLISHED_GEMV_ENERGY} (up to) | {verdict(top_energy[1]['energy_ratio'], PUBLISHED_GEMV_ENERGY)} |")
    print("\n### W2A2 GeMV over the linear shapes of the paper's four end-to-end models\n")
    print("| model layer | outputs x inputs | CPU ms (q2_k) | PUD-system ms (in-DRAM + host) | speedup | energy ratio |")
    print("|---|---|---|---|---|---|")
    for name, r in shapes.items():
        pud_ms = (f"{r['pud_ms']:.3f} ({r['dram_ms']:.3f} + {r['host_ms']:.3f})" if r["on_pud"]
                  else f"{r['pud_ms']:.3f} (host runs it: PUD is slower)")
        print(f"| {name} | {r['spec'].split(':')[1]} | {r['cpu_ms']:.3f} | {pud_ms} | {r['speedup']:.2f}x | {r['energy_ratio']:.2f}x |")
    print(f"\n### 2-bit GeMV energy: CPU {two['cpu_mj']:.1f} mJ, PUD {two['pud_mj']:.2f} mJ; "
          "the host's package power while the modules compute\n")
    print("| host while the modules compute | energy ratio | vs published 30.5x |")
    print("|---|---|---|")
    for label, ratio in host_wait_ratios(two).items():
        print(f"| {label} | {ratio:.2f}x | {verdict(ratio, PUBLISHED_GEMV_ENERGY)} |")

    e2e = [e2e_row(2), e2e_row(4), e2e_row(2, objective="energy"), e2e_row(4, objective="energy"),
           e2e_row(2, 8), e2e_row(4, 8), e2e_row(2, group=128), e2e_row(4, group=128)]
    print("\n## End-to-end decode, llama2-13b, context 256\n")
    print("| W/A bits (PUD) | PUD scales | mapper objective | CPU format | CPU tok/s | PUD+host tok/s | speedup | energy ratio | decode linears on PUD | published speedup / energy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in e2e:
        pub = PUBLISHED_E2E.get(r["wbits"]) if main_setting(r) else None
        if r["objective"] == "energy":
            pub = PUBLISHED_E2E.get(r["wbits"])
        note = (f"{pub['speedup']}x ({verdict(r['speedup'], pub['speedup'])}) / {pub['energy']}x "
                f"({verdict(r['energy_ratio'], pub['energy'])})") if pub else "sensitivity"
        print(f"| W{r['wbits']}A{r['abits']} | {r['group']} | {r['objective']} | {r['cpu_format']} | {r['cpu_tokens_per_s']:.2f} | "
              f"{r['pud_tokens_per_s']:.2f} | {r['speedup']:.2f}x | {r['energy_ratio']:.2f}x | "
              f"{r['linears_on_pud']} of {r['linears']} | {note} |")
    for r in e2e:
        if not main_setting(r):
            continue
        print(f"\n### Decode linears of W{r['wbits']}A{r['abits']} by role: where the mapper put them "
              "(latency objective) and each device's cost\n")
        print(f"| role | on PUD | CPU ms | PUD ms | CPU mJ | PUD mJ | CPU reads ({r['cpu_format']}), MB |")
        print("|---|---|---|---|---|---|---|")
        for g in r["by_linear"]:
            print(f"| {g['role']} | {g['on_pud']} of {g['count']} | {g['cpu_ms']:.3f} | {g['pud_ms']:.3f} | "
                  f"{g['cpu_mj']:.2f} | {g['pud_mj']:.2f} | {g['cpu_mb']:.2f} |")
    print(f"\n(bench time {time.perf_counter() - started:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemv": gemv, "gemv_a8": gemv_a8, "gemv_group128": gemv_g128, "e2e": e2e}, f, indent=2)


if __name__ == "__main__":
    main()

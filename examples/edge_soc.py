"""Edge SoC: LLaMA-2-7B on a heterogeneous SoC (`edge-soc`: CPU + DDR4 PUD modules + FPGA + RRAM
crossbars) — which ops went where, and tokens/s and J/token against each device alone.

    python examples/edge_soc.py [--fast]

Weights W4 (group 128), activations A8 so every device can run the linears; prefill 128 tokens,
decode at context 256, priced by `pimc.estimate`. The report's `placement` key lists every op with
its device, its cost there, its cost on every other capable device and why the mapper chose it.
"Alone" targets are edge-soc restricted to one device (same numbers, its memory); the PUD modules
and the crossbars keep the CPU, which runs every op they cannot. `bench/hetero.py` is the benchmark
version of this study.

`--fast` (or PIMC_EXAMPLES_FAST=1): the LLaMA-2-7B shape with 2 of its 32 decoder layers and the
crossbar tiles scaled by the same 2/32 (so a similar share of the weights fits on them); absolute
numbers are then per 2 layers. The full run prices all 32 layers on the preset as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections import Counter, defaultdict

import pimc
from pimc.frontends import ModelSource, read_model
from pimc.targets import Target, load_target

ALONE = {"cpu": ["cpu"], "fpga": ["fpga"], "pud+host": ["pud", "cpu"], "xbar+cpu": ["xbar", "cpu"]}
SETTINGS = dict(seq_len=128, context=256, wbits=4, abits=8, group=128)


FAST_LAYERS = 2


def model_and_target(fast: bool) -> tuple[ModelSource, Target]:
    source, soc = read_model("llama2-7b"), load_target("edge-soc")
    if not fast:
        return source, soc
    layers = source.config.num_layers
    config = dataclasses.replace(source.config, name=f"llama2-7b[{FAST_LAYERS} of {layers} layers]", num_layers=FAST_LAYERS)
    tiles = soc.device("xbar").tiles * FAST_LAYERS // layers
    return ModelSource(config, "llama2-7b"), load_target("edge-soc", [f"xbar.tiles={tiles}"])


def show_placement(report: pimc.Report) -> None:
    rows = report.data["placement"]["decode"]
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        by_kind[row["kind"]][row["device"]] += 1
    print(f"decode step: {len(rows)} ops; op kind -> device: count")
    for kind in sorted(by_kind):
        print(f"   {kind:<22} " + ", ".join(f"{d}: {n}" for d, n in sorted(by_kind[kind].items())))
    linear = next(r for r in rows if r["kind"] == "llm.linear" and r["device"] != "cpu")
    others = ", ".join(f"{d} {c['latency_s'] * 1e6:.1f} us" for d, c in sorted(linear["candidates"].items()))
    print(f"   e.g. {linear['op']} ({', '.join(linear['weights'])}) on {linear['device']}: {linear['why']}; "
          f"candidates: {others}")
    print("device busy time and energy over one prefill and one decode step:")
    for name, d in report.data["devices"].items():
        print(f"   {name:<5} ({d['kind']:<8}) busy {d['busy_s'] * 1e3:8.3f} ms, energy {d['energy_j'] * 1e3:8.3f} mJ, {d['ops']} ops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("PIMC_EXAMPLES_FAST")),
                        help="small settings (also PIMC_EXAMPLES_FAST=1)")
    args = parser.parse_args()
    source, soc = model_and_target(args.fast)
    mix = pimc.estimate(source, soc, **SETTINGS)
    print(f"{source.name} on edge-soc ({soc.device('xbar').tiles} crossbar tiles), W4A8 group 128, "
          f"prefill 128 tokens, decode at context 256")
    show_placement(mix)
    print(f"{'target':<22} {'tok/s':>9} {'J/token':>9} {'TTFT s':>8}  {'mix speedup':>11} {'mix J saving':>12}")
    print(f"{'edge-soc (all)':<22} {mix.tokens_per_s:9.3f} {mix.joules_per_token:9.4f} {mix.ttft_s:8.3f}")
    ratios = {}
    for label, devices in ALONE.items():
        alone = pimc.estimate(source, soc.restricted_to(devices, f"edge-soc[{label}]"), **SETTINGS)
        ratios[label] = (mix.tokens_per_s / alone.tokens_per_s, alone.joules_per_token / mix.joules_per_token)
        print(f"{'edge-soc[' + label + ']':<22} {alone.tokens_per_s:9.3f} {alone.joules_per_token:9.4f} "
              f"{alone.ttft_s:8.3f}  {ratios[label][0]:10.2f}x {ratios[label][1]:11.2f}x")
    fastest = min(ratios, key=lambda k: ratios[k][0])
    frugal = min(ratios, key=lambda k: ratios[k][1])
    beats = all(s > 1 and e > 1 for s, e in ratios.values())
    print(f"Conclusion: the mix {'beats' if beats else 'does NOT beat'} every device alone on both tokens/s and "
          f"J/token: it has {ratios[fastest][0]:.3f}x the tokens/s of the fastest alone ({fastest}), "
          f"{1 / ratios[frugal][1]:.3f}x the J/token of the most frugal alone ({frugal}).")


if __name__ == "__main__":
    main()

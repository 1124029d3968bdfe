"""Reproduce PIM-LLM (arXiv 2504.01994): ternary OPT-6.7B and GPT-2 medium decoding on `pimllm-rram`
(projections, FFN and lm_head on resident RRAM crossbars, attention and the rest on a 32x32 int8
systolic array) against `tpu-llm` (the same array doing everything, weights streamed from LPDDR).

The experiment is defined once, in `pimc.studies.pimllm` (shared with examples/pimllm.py; its
docstring lists the setting and the assumptions): ternary weights with one scale per output channel,
int8 activations, one decode token at the given context (every KV-cache slot read), mapped by pimc's
default mapper (CP-SAT) with the devices' mechanism cost models.
Published figures (REFERENCE.md): 79.2x tokens/s for OPT-6.7B and 11.6x for GPT-2 medium at context
128; the systolic array 60-74% of PIM-LLM's latency at 128, crossbar+DAC+ADC under 1%; about +70%
tokens/J for GPT-2 medium at context 4096.

Every parameter is in the two preset files with its source or marked assumed; nothing is fitted.
The "implied" section says how far the mechanism model is from the published ratios and why:
at decode the baseline's array runs every linear as a one-row GEMV (32 of its 1024 PEs busy), so its
time is proportional to the MACs of each model, and the ratio between the two models' gains is set by
PIM-LLM's own latency alone. The sensitivity row shows the per-op overhead an earlier version fitted
(2000 cycles); it is labelled as fitted and is not the default.

Usage: python bench/reproduce_pimllm.py [--quick]
"""

from __future__ import annotations

import argparse
import time

from pimc.frontends import read_model
from pimc.studies.pimllm import (
    CONTEXT,
    FITTED_OVERHEAD,
    PIM_TARGET,
    PUBLISHED,
    PUBLISHED_TOKENS_PER_J,
    Decode,
    pim_vs_tpu,
)
from pimc.targets import load_target

AMORTIZE_TOKENS = 1000


def speedup(pim: Decode, tpu: Decode) -> float:
    return tpu.latency_s / pim.latency_s


def main_table(results: dict[str, tuple[Decode, Decode]]) -> None:
    print(f"## Decode at context {CONTEXT}: pimllm-rram vs tpu-llm\n")
    print("| model | PIM-LLM tok/s | TPU tok/s | speedup | published | deviation | tok/J ratio | systolic share | "
          "attention share | crossbar+DAC+ADC share | crossbars |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, (pim, tpu) in results.items():
        gain = speedup(pim, tpu)
        print(f"| {model} | {pim.tokens_per_s:.1f} | {tpu.tokens_per_s:.2f} | {gain:.1f}x | {PUBLISHED[model]}x | "
              f"{gain / PUBLISHED[model] - 1:+.0%} | {pim.tokens_per_j / tpu.tokens_per_j:.2f}x | "
              f"{pim.systolic_s / pim.latency_s:.0%} | {pim.attention_s / pim.latency_s:.0%} | "
              f"{pim.crossbar_analog_s / pim.latency_s:.2%} | {pim.crossbars:,} |")


def implied(results: dict[str, tuple[Decode, Decode]]) -> None:
    """What PIM-LLM's latency must be for the published ratios, given this baseline."""
    print("\n## What the published ratios imply for PIM-LLM's latency (the baseline as modelled)\n")
    clock_hz = load_target(PIM_TARGET).device("sa").clock_mhz * 1e6
    print(f"| model | layers | PIM-LLM modelled | implied by the published ratio | missing per layer | at {clock_hz / 1e6:g} MHz |")
    print("|---|---|---|---|---|---|")
    for model, (pim, tpu) in results.items():
        layers = read_model(model).config.num_layers
        want = tpu.latency_s / PUBLISHED[model]
        missing = (want - pim.latency_s) / layers
        print(f"| {model} | {layers} | {pim.latency_s * 1e3:.2f} ms | {want * 1e3:.2f} ms | {missing * 1e6:.0f} us | "
              f"{missing * clock_hz:,.0f} cycles |")
    (a, (pa, ta)), (b, (pb, tb)) = results.items()
    print(f"\nThe baseline's time scales with each model's MACs ({a}/{b}: {ta.latency_s / tb.latency_s:.1f}x), so the "
          f"gap between the two gains is PIM-LLM's own: published {PUBLISHED[a] / PUBLISHED[b]:.2f}x needs "
          f"PIM-LLM {a}/{b} = {ta.latency_s / tb.latency_s / (PUBLISHED[a] / PUBLISHED[b]):.2f}x; the mechanism gives "
          f"{pa.latency_s / pb.latency_s:.2f}x (attention per layer grows with heads x (fill + head_dim), and "
          f"crossbar time does not grow with width). The published numbers fit a latency of about the same "
          f"size per decoder layer in both models that no cited mechanism here accounts for.")


def sensitivity() -> None:
    print("\n## Sensitivity (NOT the default): the 2000-cycle per-op overhead an earlier version fitted to the published ratios\n")
    print("| model | speedup | published | systolic share | attention share |")
    print("|---|---|---|---|---|")
    for model in PUBLISHED:
        pim, tpu = pim_vs_tpu(model, overrides=FITTED_OVERHEAD)
        print(f"| {model} | {speedup(pim, tpu):.1f}x | {PUBLISHED[model]}x | {pim.systolic_s / pim.latency_s:.0%} | "
              f"{pim.attention_s / pim.latency_s:.0%} |")


def programming(results: dict[str, tuple[Decode, Decode]]) -> None:
    print(f"\n## Weight programming (once, amortised over {AMORTIZE_TOKENS} tokens)\n")
    print("| model | crossbars | ADC area | program time | program energy | per token | vs decode energy/token |")
    print("|---|---|---|---|---|---|---|")
    xbar = load_target(PIM_TARGET).device("xbar")
    for model, (pim, _) in results.items():
        per_token = pim.program_j / AMORTIZE_TOKENS
        print(f"| {model} | {pim.crossbars:,} | {xbar.adc_area_mm2(pim.crossbars):,.0f} mm2 | {pim.program_s * 1e3:.2f} ms | "
              f"{pim.program_j * 1e3:.1f} mJ | {per_token * 1e6:.1f} uJ | {per_token / pim.energy_j:.1%} |")


def sweep(results: dict[str, tuple[Decode, Decode]]) -> None:
    print("\n## Context sweep: the gain falls as attention on the array dominates\n")
    print("| model | context | PIM-LLM tok/s | TPU tok/s | speedup | tok/J ratio | systolic share |")
    print("|---|---|---|---|---|---|---|")
    for model in PUBLISHED:
        for context in (128, 256, 512, 1024, 2048, 4096):
            pim, tpu = results[model] if context == CONTEXT else pim_vs_tpu(model, context)
            published = PUBLISHED_TOKENS_PER_J.get((model, context))
            note = f" (published ~{published:.2f}x)" if published else ""
            print(f"| {model} | {context} | {pim.tokens_per_s:.1f} | {tpu.tokens_per_s:.2f} | {speedup(pim, tpu):.1f}x | "
                  f"{pim.tokens_per_j / tpu.tokens_per_j:.2f}x{note} | {pim.systolic_s / pim.latency_s:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help=f"context {CONTEXT} only")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {model: pim_vs_tpu(model) for model in PUBLISHED}
    main_table(results)
    implied(results)
    sensitivity()
    programming(results)
    if not args.quick:
        sweep(results)
    print(f"\n(bench wall time {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()

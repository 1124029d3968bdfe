"""PIM-LLM: 1-bit and ternary LLMs on RRAM crossbars + a systolic array (`pimllm-rram`).

    python examples/pimllm.py [--fast]

1. Compile the bundled tiny LLaMA with binary (1-bit) and ternary (1.58-bit) weights and 8-bit
   activations: projections and FFN sit on resident crossbars, attention and the rest run on a 32x32
   int8 systolic array. Run it and compare its tokens with the same quantized model on a CPU.
2. Estimate decoding (one token at context 128) of PIM-LLM's models against the TPU-like baseline
   (`tpu-llm`: the same systolic array, weights streamed from LPDDR) — PIM-LLM reports 79.2x
   tokens/s for OPT-6.7B and 11.6x for GPT-2 350M (gpt2-medium) at context 128.

Part 2 is the experiment of `pimc.studies.pimllm` (its docstring lists the setting and the
assumptions), the one bench/reproduce_pimllm.py prints: the two cannot disagree.

`--fast` (or PIMC_EXAMPLES_FAST=1) estimates gpt2-medium only, ternary only.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import pimc
from pimc.dialects.cim import RESIDENCY_ATTR
from pimc.studies.pimllm import CONTEXT, PUBLISHED, pim_vs_tpu

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]
BITS = {1: "binary", 1.58: "ternary"}


def run_tiny(wbits: float) -> bool:
    prog = pimc.compile("tiny-llama", target="pimllm-rram", seq_len=8, context=32, wbits=wbits, abits=8)
    result = prog.run(PROMPT, tokens=4)
    cpu = pimc.compile("tiny-llama", target="cpu-a76", seq_len=8, context=32, wbits=wbits, abits=8).run(PROMPT, tokens=4)
    residency = prog.module.attributes[RESIDENCY_ATTR].data["xbar"].data
    cim = result.report.data["simulator"]["cim"]
    devices = result.report.data["devices"]
    same = result.tokens == cpu.tokens
    print(f"   W{wbits:g}A8 ({BITS[wbits]}): tokens {result.tokens}, same as CPU: {same}, "
          f"max |logit difference| {float(np.abs(result.logits - cpu.logits).max()):.4f}")
    print(f"      crossbars used {residency['crossbars_used'].value.data} of {residency['crossbars_available'].value.data}, "
          f"one-time programming {residency['program_energy_j'].value.data * 1e6:.2f} uJ; "
          f"{cim['adc_conversions']} ADC conversions, max ADC error {cim['adc_max_abs_error']}; "
          f"ops: xbar {devices['xbar']['ops']}, systolic {devices['sa']['ops']}")
    return same


def compare(model: str, wbits: float) -> float:
    pim, tpu = pim_vs_tpu(model, wbits=wbits)
    gain = pim.tokens_per_s / tpu.tokens_per_s
    print(f"   {model:<12} W{wbits:<4g}  pimllm-rram {pim.tokens_per_s:8.2f} tok/s {pim.tokens_per_j:8.2f} tok/J   "
          f"tpu-llm {tpu.tokens_per_s:7.3f} tok/s {tpu.tokens_per_j:7.2f} tok/J   "
          f"{gain:6.1f}x tok/s, {pim.tokens_per_j / tpu.tokens_per_j:6.1f}x tok/J (published {PUBLISHED[model]}x tok/s); "
          f"systolic array {pim.systolic_s / pim.latency_s:.0%} of the time")
    return gain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("PIMC_EXAMPLES_FAST")),
                        help="small settings (also PIMC_EXAMPLES_FAST=1)")
    args = parser.parse_args()
    print("1. tiny-llama on pimllm-rram (crossbars 'xbar' + systolic array 'sa'), simulated")
    same = all([run_tiny(wbits) for wbits in BITS])
    print(f"2. decode at context {CONTEXT}, one token, 8-bit activations, one weight scale per output channel")
    cases = [("gpt2-medium", 1.58)] if args.fast else [(m, b) for m in PUBLISHED for b in BITS]
    gains = {case: compare(*case) for case in cases}
    (model, bits), gain = max(gains.items(), key=lambda item: item[1])
    print(f"Conclusion: with weights resident on the crossbars, {model} W{bits:g} decodes {gain:.1f}x faster than "
          f"the TPU-like baseline (published {PUBLISHED[model]}x); the simulated models give the CPU's tokens: {same}.")


if __name__ == "__main__":
    main()

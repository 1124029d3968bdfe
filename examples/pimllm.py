"""PIM-LLM: 1-bit and ternary LLMs on RRAM crossbars + a systolic array (`pimllm-rram`).

    python examples/pimllm.py [--fast]

1. Compile the bundled tiny LLaMA with binary (1-bit) and ternary (1.58-bit) weights and 8-bit
   activations: projections and FFN sit on resident crossbars, attention and the rest run on a 32x32
   int8 systolic array. Run it and compare its tokens with the same quantized model on a CPU.
2. Estimate decoding (one token at context 128) of PIM-LLM's models against the TPU-like baseline
   (`tpu-llm`: the same systolic array, weights streamed from LPDDR) — PIM-LLM reports 79.2x
   tokens/s for OPT-6.7B and 11.6x for GPT-2 350M (gpt2-medium) at context 128.

Part 2 is THE definition of the PIM-LLM experiment: `decode` (settings `WBITS`, `ABITS`,
`PER_CHANNEL`) is what bench/reproduce_pimllm.py imports too, so the example and the benchmark
cannot disagree; it runs the passes and the mapper of `pimc.estimate` (tests/test_examples.py checks
that they give the same decode step).

`--fast` (or PIMC_EXAMPLES_FAST=1) estimates gpt2-medium only, ternary only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import StringAttr

import pimc
from pimc.dialects.cim import RESIDENCY_ATTR
from pimc.dialects.llm_work import op_work
from pimc.frontends import read_model
from pimc.ir import make_context
from pimc.mapping import MapOptions
from pimc.mapping.from_ir import annotate, map_module
from pimc.passes.cim_residency import CimResidencyPass
from pimc.passes.crossbar_tile import CrossbarTilePass
from pimc.passes.module_target import TARGET_ATTR
from pimc.pipeline import graph_passes, target_passes
from pimc.targets import load_target
from pimc.targets.cim import breakdown as cim_breakdown

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]
PUBLISHED = {"opt-6.7b": 79.2, "gpt2-medium": 11.6}
BITS = {1: "binary", 1.58: "ternary"}
CONTEXT = 128
WBITS, ABITS = 1.58, 8
# One weight scale per output channel: BitNet b1.58 (the 1-bit LLMs PIM-LLM runs) scales a whole
# tensor by its absmean, so no scale group splits K (a group shorter than K would make the baseline's
# array run each group as its own product, with its own fill and drain).
PER_CHANNEL = 1 << 16  # longer than any K here


@dataclasses.dataclass(frozen=True)
class Decode:
    """One decode step as scheduled: latency, energy and where the time goes."""

    latency_s: float
    energy_j: float
    busy_s: dict[str, float]    # per device
    attention_s: float          # llm.attention ops (on the systolic array)
    systolic_s: float           # every op on a systolic device
    crossbar_analog_s: float    # crossbar reads + ADC conversions (the DACs settle within the read)
    crossbars: int = 0
    program_s: float = 0.0      # writing the weights into the crossbars, once
    program_j: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.latency_s

    @property
    def tokens_per_j(self) -> float:
        return 1.0 / self.energy_j


def decode(model: str, target: str, context: int = CONTEXT, *, wbits: float = WBITS,
           overrides: Sequence[str] = ()) -> Decode:
    """One decode step of `model` (one token, `context` KV-cache slots) on `target`, with the passes
    and mapper `pimc.estimate` uses. A learned position table shorter than `context` is lengthened
    (cost only: no weights are read)."""
    source = read_model(model)
    config = source.config
    if config.rope_theta is None and context > config.max_positions:
        source = dataclasses.replace(source, config=dataclasses.replace(config, max_positions=context))
    tgt = load_target(target, list(overrides))
    module = source.build(1, context)
    graph_passes(module, wbits, PER_CHANNEL, ABITS)
    target_passes(module, tgt)
    mapped = map_module(module, tgt, MapOptions())
    annotate(mapped, tgt)
    fn = next(f for f in mapped if f.name == "decode")
    busy: dict[str, float] = defaultdict(float)
    energy = attention = systolic = analog = 0.0
    for slot in fn.schedule.ops_in_order():
        cost = fn.problem.costs[(slot.op, slot.device)]
        device = tgt.device(slot.device)
        busy[slot.device] += cost.latency_s
        energy += cost.energy_j
        if fn.problem.op_by_name[slot.op].kind == "llm.attention":
            attention += cost.latency_s
        if device.kind == "systolic":
            systolic += cost.latency_s
        elif device.kind == "cim":
            analog += cim_breakdown(device, tgt.memory_of(device), op_work(fn.ops[slot.op])).analog_s
    result = Decode(fn.schedule.makespan_s, energy, dict(busy), attention, systolic, analog)
    if any(d.kind == "cim" for d in tgt.devices):
        module.attributes[TARGET_ATTR] = StringAttr(tgt.model_dump_json())
        CrossbarTilePass().apply(make_context(), module)
        CimResidencyPass().apply(make_context(), module)
        residency = module.attributes[RESIDENCY_ATTR].data[next(d.name for d in tgt.devices if d.kind == "cim")].data
        result = dataclasses.replace(result, crossbars=residency["crossbars_used"].value.data,
                                     program_s=residency["program_latency_s"].value.data,
                                     program_j=residency["program_energy_j"].value.data)
    return result


def pim_vs_tpu(model: str, context: int = CONTEXT, *, wbits: float = WBITS,
               overrides: Sequence[str] = ()) -> tuple[Decode, Decode]:
    """`decode` on pimllm-rram and on tpu-llm; `overrides` apply to pimllm-rram, and those of its
    systolic array `sa` to the baseline's identical array as well."""
    return (decode(model, "pimllm-rram", context, wbits=wbits, overrides=overrides),
            decode(model, "tpu-llm", context, wbits=wbits, overrides=[o for o in overrides if o.startswith("sa.")]))


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

"""PIM-LLM with the Python API: a ternary model on RRAM crossbars + a systolic array.

Compiles the bundled tiny LLaMA for `pimllm-rram` (projections and FFN on resident crossbars,
attention and the rest on a 32x32 int8 systolic array), runs it, and shows where the weights sit
and what the ADCs did; then estimates ternary OPT-6.7B decoding against the TPU-like baseline.
Usage: python examples/pimllm.py
"""

import pimc
from pimc.dialects.cim import RESIDENCY_ATTR

prog = pimc.compile("tiny-llama", target="pimllm-rram", seq_len=8, context=32, wbits=1.58, abits=8)
result = prog.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=8)
print("tokens:", result.tokens)
print(result.report.to_markdown())
residency = prog.module.attributes[RESIDENCY_ATTR].data["xbar"].data
print("crossbars used:", residency["crossbars_used"].value.data, "of", residency["crossbars_available"].value.data,
      "| one-time programming:", f"{residency['program_energy_j'].value.data * 1e6:.2f} uJ")
print("simulator:", result.report.data["simulator"])

# Ternary OPT-6.7B, one scale per 256 inputs (a crossbar's rows), decode at context 128.
for target in ("pimllm-rram", "tpu-llm"):
    report = pimc.estimate("opt-6.7b", target=target, seq_len=1, context=128, wbits=1.58, abits=8, group=256)
    print(f"{target:12s} {report.tokens_per_s:8.2f} tokens/s  {1 / report.joules_per_token:8.2f} tokens/J")

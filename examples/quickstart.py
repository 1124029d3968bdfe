"""The Python API end to end: compile tiny-llama for two CPU targets, run it, compare the reports.

Usage: python examples/quickstart.py
"""

import pimc

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]

for target in ("cpu-a76", "cpu-i7-9700k"):
    program = pimc.compile("tiny-llama", target=target, seq_len=len(PROMPT), context=32)
    result = program.run(PROMPT, tokens=8)
    r = result.report
    print(f"{target:>13}: tokens {result.tokens}  TTFT {r.ttft_s * 1e6:8.1f} µs  "
          f"{r.tokens_per_s:8.1f} tok/s  {r.joules_per_token * 1e3:.3f} mJ/token")

est = pimc.estimate("llama2-7b", target="cpu-a76", seq_len=128, context=128, wbits=4)
print(f"llama2-7b 4-bit on cpu-a76 (estimate): TTFT {est.ttft_s:.2f} s, {est.tokens_per_s:.2f} tok/s, "
      f"{est.joules_per_token:.3f} J/token")

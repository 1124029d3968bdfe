"""The Python API end to end: compile tiny-llama for two CPU targets, run it, compare the reports;
then estimate LLaMA-2-7B (cost only, no weights).

    python examples/quickstart.py [--fast]

`--fast` (or PIMC_EXAMPLES_FAST=1) generates 4 tokens instead of 8 and prices a 16-token prompt.
"""

from __future__ import annotations

import argparse
import os

import pimc

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("PIMC_EXAMPLES_FAST")),
                        help="small settings (also PIMC_EXAMPLES_FAST=1)")
    args = parser.parse_args()
    reports, tokens = {}, {}
    for target in ("cpu-a76", "cpu-i7-9700k"):
        program = pimc.compile("tiny-llama", target=target, seq_len=len(PROMPT), context=32)
        result = program.run(PROMPT, tokens=4 if args.fast else 8)
        r = reports[target] = result.report
        tokens[target] = result.tokens
        print(f"{target:>13}: tokens {result.tokens}  TTFT {r.ttft_s * 1e6:8.1f} µs  "
              f"{r.tokens_per_s:8.1f} tok/s  {r.joules_per_token * 1e3:.3f} mJ/token")

    seq = 16 if args.fast else 128
    est = pimc.estimate("llama2-7b", target="cpu-a76", seq_len=seq, context=128, wbits=4)
    print(f"llama2-7b 4-bit on cpu-a76 (estimate, {seq}-token prompt): TTFT {est.ttft_s:.2f} s, "
          f"{est.tokens_per_s:.2f} tok/s, {est.joules_per_token:.3f} J/token")
    a76, i7 = reports["cpu-a76"], reports["cpu-i7-9700k"]
    print(f"Conclusion: both CPUs generate the same tokens ({tokens['cpu-a76'] == tokens['cpu-i7-9700k']}); "
          f"the i7-9700K decodes {i7.tokens_per_s / a76.tokens_per_s:.2f}x faster than the Cortex-A76 "
          f"at {i7.joules_per_token / a76.joules_per_token:.2f}x the energy per token.")


if __name__ == "__main__":
    main()

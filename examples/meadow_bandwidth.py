"""MEADOW bandwidth sweep: OPT-125M W8A8 on the ZCU102 FPGA preset (`zcu102-meadow`), TTFT and TBT
against the accelerator's off-chip bandwidth, for the GEMM-based attention dataflow and TPHS.

    python examples/meadow_bandwidth.py [--fast]

Each point is `pimc.estimate` with a target override, exactly what the CLI does with
    pimc estimate opt-125m --target zcu102-meadow --wbits 8 --abits 8 --set fpga.offchip_gbps=12 --dataflow tphs
GEMM: attention intermediates go through DRAM (fp32 scores, int8 probabilities: `fpga.score_bits`);
TPHS (token-parallel, head-sequential, from the Q projection on) keeps them and Q on chip. `pimc sweep examples/sweeps/meadow_bandwidth.toml` runs a
bandwidth x dataflow grid (at a 64-token prompt) on a process pool. MEADOW reports GEMM winning at
high bandwidth, TPHS at low bandwidth, and 1.5-1.7x TTFT / 1.4-1.52x TBT at 12 Gbps with weight
packing as well (not applied here).

`--fast` (or PIMC_EXAMPLES_FAST=1): three bandwidths and a 256-token prompt instead of nine and 512
(TPHS's gain grows with the prompt: the attention intermediates grow with its square).
"""

from __future__ import annotations

import argparse
import os

import pimc

FULL_GBPS = (1, 2, 3, 6, 12, 18, 25, 38, 51)
FAST_GBPS = (1, 12, 51)


def point(gbps: float, dataflow: str, seq_len: int) -> tuple[float, float]:
    """TTFT and time between tokens (s) at `gbps` Gbit/s off-chip."""
    report = pimc.estimate("opt-125m", "zcu102-meadow", seq_len=seq_len, context=2 * seq_len, wbits=8, abits=8,
                           overrides=[f"fpga.offchip_gbps={gbps}"], dataflow=dataflow)
    return report.ttft_s, report.decode.latency_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("PIMC_EXAMPLES_FAST")),
                        help="small settings (also PIMC_EXAMPLES_FAST=1)")
    args = parser.parse_args()
    seq_len = 256 if args.fast else 512
    print(f"OPT-125M W8A8 on zcu102-meadow, prompt {seq_len} tokens, decode at context {2 * seq_len}")
    print(f"{'Gbit/s':>7} | {'TTFT GEMM ms':>12} {'TTFT TPHS ms':>12} {'GEMM/TPHS':>9} | "
          f"{'TBT GEMM ms':>11} {'TBT TPHS ms':>11} {'GEMM/TPHS':>9}")
    ratios = {}
    for gbps in FAST_GBPS if args.fast else FULL_GBPS:
        (g_ttft, g_tbt), (t_ttft, t_tbt) = point(gbps, "gemm", seq_len), point(gbps, "tphs", seq_len)
        ratios[gbps] = (g_ttft / t_ttft, g_tbt / t_tbt)
        print(f"{gbps:>7g} | {g_ttft * 1e3:12.3f} {t_ttft * 1e3:12.3f} {ratios[gbps][0]:8.3f}x | "
              f"{g_tbt * 1e3:11.3f} {t_tbt * 1e3:11.3f} {ratios[gbps][1]:8.4f}x")
    low, high = min(ratios), max(ratios)
    trend = "shrinks" if ratios[high][0] < ratios[low][0] else "grows"
    print(f"Conclusion: TTFT GEMM/TPHS is {ratios[low][0]:.3f}x at {low:g} Gbit/s and {ratios[high][0]:.3f}x at "
          f"{high:g} Gbit/s ({faster(ratios[low][0])} at low bandwidth, {faster(ratios[high][0])} at high; TPHS's edge "
          f"{trend} as bandwidth grows); decode TBT differs by at most {max(abs(r[1] - 1) for r in ratios.values()) * 100:.2f}%.")


def faster(ratio: float) -> str:
    return "TPHS faster" if ratio > 1 else "GEMM faster" if ratio < 1 else "a tie"


if __name__ == "__main__":
    main()

"""Compile-time scaling: `pimc.estimate` of llama2-7b (prefill 128 + decode at context 128) on a target
(default cpu-a76; e.g. --target pimllm-rram for two devices) for 1..32 layers, with the CP-SAT mapper
(default) or a baseline (--solver heft). Target: linear growth, the full 32-layer model under 5 s
on a 2-core machine. Also prints decode latency per layer (N layers vs N x 1 layer).

Weights are 4-bit (group 32), as llama2-7b is deployed on an 8 GiB edge board: at fp32 its 27 GB of
weights do not fit the preset's memory and estimate reports that as an infeasible request.
Ratios (CPU time) are against the 1-layer run in the same process. Usage: python bench/compile_scaling.py
"""

from __future__ import annotations

import dataclasses
import time

import pimc
from pimc.frontends import ModelSource, read_model

LAYERS = (1, 2, 4, 8, 16, 32)


def timed_estimate(source: ModelSource, target: str, solver: str, repeats: int = 2) -> tuple[float, float, pimc.Report]:
    """Best wall and best CPU seconds of `repeats` runs (CPU time is the steadier figure on a
    shared machine) and the last report."""
    wall = cpu = float("inf")
    report = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = pimc.estimate(source, target, seq_len=128, context=128, wbits=4, solver=solver)
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu, report


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cpu-a76")
    ap.add_argument("--solver", default="cpsat")
    args = ap.parse_args()
    base = read_model("llama2-7b")
    pimc.estimate(dataclasses.replace(base, config=dataclasses.replace(base.config, num_layers=1)), args.target, seq_len=8, context=8, wbits=4)  # warm-up imports
    print(f"{'layers':>6} {'wall_s':>8} {'cpu_s':>7} {'cpu/layer':>9} {'vs 1 layer':>10} {'ttft_s':>8} {'tok/s':>7} {'decode/layer vs 1':>17}  solver")
    first = first_dec = None
    for layers in LAYERS:
        source = dataclasses.replace(base, config=dataclasses.replace(base.config, num_layers=layers))
        wall, cpu, report = timed_estimate(source, args.target, args.solver)
        first = first or cpu
        dec = report.data["decode"]["latency_s"]
        first_dec = first_dec or dec
        print(f"{layers:>6} {wall:>8.3f} {cpu:>7.3f} {cpu / layers:>9.4f} {cpu / first:>9.1f}x {report.ttft_s:>8.3f} {report.tokens_per_s:>7.2f} "
              f"{dec / layers / first_dec:>17.3f}  {report.data['schedule']['solver']} ({report.data['schedule']['status']})")


if __name__ == "__main__":
    main()

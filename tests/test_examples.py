"""Every example runs (with --fast) in its own process and prints numbers that hold up: the ones cheap
to recompute are recomputed here through the API, the rest must agree with each other (a printed
ratio is the quotient of the printed values) and with what the example claims in its conclusion."""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import pimc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def run(script: str, *args: str, timeout: float = 900) -> str:
    env = {**os.environ, "PIMC_EXAMPLES_FAST": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--fast", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.count("Conclusion:") == 1, done.stdout
    return done.stdout


def numbers(pattern: str, text: str) -> tuple[float, ...]:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return tuple(float(g) for g in match.groups())


def close(printed: float, exact: float, decimals: int) -> bool:
    """`printed` is `exact` rounded to `decimals` places."""
    return abs(printed - exact) <= 0.51 * 10.0 ** -decimals


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart(tiny_program):
    out = run("quickstart.py")
    ttft_us, tok_s, mj = numbers(rf"cpu-a76: tokens \[[0-9, ]+\]  TTFT +{NUMBER} µs +{NUMBER} tok/s +{NUMBER} mJ/token", out)
    report = tiny_program.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=4).report  # the same compile, in this process
    assert close(ttft_us, report.ttft_s * 1e6, 1) and close(tok_s, report.tokens_per_s, 1)
    assert close(mj, report.joules_per_token * 1e3, 3)
    i7_tok_s = numbers(rf"cpu-i7-9700k: tokens .* +{NUMBER} tok/s", out)[0]
    speedup = numbers(rf"i7-9700K decodes {NUMBER}x faster", out)[0]
    assert abs(speedup - i7_tok_s / tok_s) < 0.01
    assert "same tokens (True)" in out


def test_mvdram():
    """The example prints the experiment of `pimc.studies.mvdram`, the one bench/reproduce_mvdram.py prints."""
    from pimc.studies import mvdram

    bench = runpy.run_path(str(ROOT / "bench" / "reproduce_mvdram.py"))
    assert bench["gemv_row"] is mvdram.gemv_row and bench["e2e_row"] is mvdram.e2e_row
    out = run("mvdram.py")
    pud_ms, pud_mj, cpu_ms, cpu_mj, speedup, energy = numbers(rf"W2A2 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}x +{NUMBER}x +q2_k", out)
    row = mvdram.gemv_row(2)
    assert close(pud_ms, row["pud_ms"], 3) and close(pud_mj, row["pud_mj"], 2)
    assert close(cpu_ms, row["cpu_ms"], 3) and close(cpu_mj, row["cpu_mj"], 2)
    assert close(speedup, row["speedup"], 2) and close(energy, row["energy_ratio"], 2)
    assert row["speedup"] == row["cpu_ms"] / row["pud_ms"] and row["abits"] == 2 and row["group"] == "per-channel"
    w4 = numbers(rf"W4A4 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}x", out)[4]
    assert w4 < speedup, "the PUD gain shrinks as bits grow"
    assert "decode linears on PUD: 15;" in out and "same as CPU: True" in out
    assert "bit-planes == command emulator == numpy: True" in out
    assert f"{speedup:.2f}x faster than llama.cpp on the CPU at 2-bit weights" in out


def test_pimllm():
    out = run("pimllm.py")
    assert out.count("same as CPU: True") == 2 and "W1A8 (binary)" in out and "W1.58A8 (ternary)" in out
    assert out.count("max ADC error 0.0;") == 2
    pim, tpu, gain = numbers(rf"gpt2-medium +W1.58 +pimllm-rram +{NUMBER} tok/s .*tpu-llm +{NUMBER} tok/s .*tok/J +{NUMBER}x tok/s,", out)
    assert abs(gain - pim / tpu) < 0.1 and gain > 1
    assert f"decodes {gain:.1f}x faster" in out
    # the benchmark prints the same experiment: `pimc.studies.pimllm`
    from pimc.studies import pimllm
    exact_pim, exact_tpu = pimllm.pim_vs_tpu("gpt2-medium")
    assert close(pim, exact_pim.tokens_per_s, 2) and close(tpu, exact_tpu.tokens_per_s, 3)
    assert close(gain, exact_tpu.latency_s / exact_pim.latency_s, 1)
    for script in ("examples/pimllm.py", "bench/reproduce_pimllm.py"):
        assert "from pimc.studies.pimllm import" in (ROOT / script).read_text()


def test_meadow_bandwidth():
    out = run("meadow_bandwidth.py")
    rows = re.findall(rf"^ +{NUMBER} \| +{NUMBER} +{NUMBER} +{NUMBER}x \| +{NUMBER} +{NUMBER} +{NUMBER}x$", out, re.M)
    rows = [tuple(map(float, r)) for r in rows]
    assert [r[0] for r in rows] == [1, 12, 51]
    for gbps, g_ttft, t_ttft, ratio, g_tbt, t_tbt, tbt_ratio in rows:
        assert abs(ratio - g_ttft / t_ttft) < 2e-3 and abs(tbt_ratio - g_tbt / t_tbt) < 2e-4
    assert rows[0][1] > rows[1][1] > rows[2][1] and rows[0][2] > rows[1][2] > rows[2][2], "more bandwidth, less latency"
    assert rows[0][3] > rows[2][3] > 1, "TPHS helps most when bandwidth is scarce"
    example = load_example("meadow_bandwidth")
    ttft, tbt = example.point(12, "tphs", 256)
    assert close(rows[1][2], ttft * 1e3, 3) and close(rows[1][5], tbt * 1e3, 3)


def test_edge_soc():
    out = run("edge_soc.py")
    total = int(numbers(rf"decode step: {NUMBER} ops", out)[0])
    counts = [int(n) for line in re.findall(r"^   llm\.\w+ +(.*)$", out, re.M) for n in re.findall(r": (\d+)", line)]
    assert sum(counts) == total
    assert re.search(r"llm\.linear +cpu: \d+, xbar: \d+", out), "linears split between the CPU and the crossbars"
    mix = numbers(rf"edge-soc \(all\) +{NUMBER} +{NUMBER}", out)
    example = load_example("edge_soc")
    source, soc = example.model_and_target(True)
    report = pimc.estimate(source, soc, **example.SETTINGS)
    assert close(mix[0], report.tokens_per_s, 3) and close(mix[1], report.joules_per_token, 4)
    for label in example.ALONE:
        tok_s, j, _, speedup, saving = numbers(
            rf"edge-soc\[{re.escape(label)}\] +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}x +{NUMBER}x", out)
        assert abs(speedup - mix[0] / tok_s) < 0.01 and abs(saving - j / mix[1]) < 0.02
        assert speedup >= 1, f"the mix is at least as fast as {label} alone"


def test_golden_test_example_passes():
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "examples/golden_test"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout


@pytest.mark.slow
def test_smollm2_example():
    out = run("smollm2/smollm2.py")
    assert out.splitlines()[0].startswith("The capital of France is Paris")
    assert "continues the prompt with ' Paris'" in out

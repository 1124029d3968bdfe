"""`gemv:MxK` / `gemm:MxKxN` kernel models in `pimc estimate` (report key `kernel`)."""

import json
import subprocess
import sys

import pytest

import pimc
from pimc.errors import ModelError, PimcError
from pimc.frontends import build_module, read_model
from pimc.frontends.kernels import parse_kernel
from pimc.targets import load_target
from pimc.targets.dram_pud import breakdown
from pimc.dialects.llm_work import op_work
from pimc.pipeline import graph_passes
from pimc.dialects import llm


def test_parse_kernels():
    assert (lambda c: (c.rows, c.n, c.k))(parse_kernel("gemv:32000x4096")) == (1, 32000, 4096)
    assert (lambda c: (c.rows, c.n, c.k))(parse_kernel("gemm:8x4096x11008")) == (8, 11008, 4096)
    for bad in ("gemv:32000", "gemv:1x2x3", "gemm:1x2", "gemv:0x4", "gemv:ax4"):
        with pytest.raises(ModelError, match="expected a kernel like gemv:MxK|must be positive"):
            read_model(bad)


def test_gemv_estimate_on_pud_equals_its_cost_model():
    report = pimc.estimate("gemv:32000x4096", "ddr4-pud-x4", wbits=2, abits=2, group=128)
    assert set(report.data) >= {"model", "target", "compile_s", "kernel", "devices", "schedule"}
    assert "prefill" not in report.data
    kernel = report.data["kernel"]
    module = build_module(read_model("gemv:32000x4096").config, 1, 1)
    graph_passes(module, 2, 128, 2)
    linear = next(op for op in module.walk() if isinstance(op, llm.LinearOp))
    target = load_target("ddr4-pud-x4")
    expected = breakdown(target, target.device("pud"), op_work(linear)).total
    assert kernel["latency_s"] == pytest.approx(expected.latency_s)
    assert kernel["energy_j"] == pytest.approx(expected.energy_j)
    assert report.data["devices"]["pud"]["ops"] == 3 and report.data["devices"]["cpu"]["ops"] == 0


def test_float_activations_stay_on_the_host():
    report = pimc.estimate("gemv:4096x4096", "ddr4-pud-x4", wbits=4)
    assert report.data["devices"]["pud"]["ops"] == 0 and report.data["devices"]["cpu"]["ops"] == 1


def test_gemm_is_priced_as_repeated_gemvs():
    one = pimc.estimate("gemv:4096x4096", "cpu-i7-9700k", wbits=4, abits=8).data["kernel"]
    many = pimc.estimate("gemm:16x4096x4096", "cpu-i7-9700k", wbits=4, abits=8).data["kernel"]
    assert many["latency_s"] > one["latency_s"]


def test_compile_rejects_kernels():
    with pytest.raises(PimcError, match="a kernel model has no tokens to run"):
        pimc.compile("gemv:64x64", "cpu-a76")


def test_cli_json():
    out = subprocess.run(
        [sys.executable, "-m", "pimc.cli", "estimate", "gemv:32000x4096", "--wbits", "2", "--abits", "2",
         "--target", "ddr4-pud-x4", "--json"], capture_output=True, text=True, check=True,
    )
    data = json.loads(out.stdout)
    assert data["kernel"]["latency_s"] > 0 and data["model"] == "gemv:32000x4096"

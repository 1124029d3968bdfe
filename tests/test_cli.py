"""The `pimc` command line (contract in DESIGN.md): happy paths of every command, and bad input exiting 2
with one `pimc: error:` line, no traceback and no output left behind.

Commands whose process-level behaviour matters (stdout holding only JSON, files written, exit codes of
the real process) run as subprocesses. To keep the file fast, --help texts and most error cases call
the same entry point, `pimc.cli.main`, in-process; a few error cases also run as subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import pimc
import pimc.cli
from pimc.ir import parse_module, print_module

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]
IDS = ",".join(map(str, PROMPT))


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def pimc_process(*args) -> Result:
    p = subprocess.run([sys.executable, "-m", "pimc.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    return Result(p.returncode, p.stdout, p.stderr)


def pimc_inprocess(*args) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = None
    pimc.cli._state["debug"] = False
    with mock.patch.object(sys, "argv", ["pimc", *map(str, args)]), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            pimc.cli.main()
        except SystemExit as e:
            code = e.code
    assert code is not None, "main() must end with sys.exit"
    return Result(code, out.getvalue(), err.getvalue())


def assert_ok(r: Result) -> None:
    assert r.code == 0, r.err
    assert "Traceback" not in r.err


def assert_user_error(r: Result, *fragments: str) -> None:
    assert r.code == 2, r
    assert "Traceback" not in r.err
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("pimc: error: "), lines[0]
    assert r.out == ""
    for fragment in fragments:
        assert fragment in lines[0]


SMALL_MLIR = """\
builtin.module {
  func.func @prefill(%ids: tensor<4xi64>, %pos: tensor<4xi64>) -> (tensor<4x64xf32>, tensor<4xi64>) {
    %w = llm.weight "embed" : tensor<64x32xf32>
    %0 = llm.embedding %ids, %w : (tensor<4xi64>, tensor<64x32xf32>) -> tensor<4x32xf32>
    %w_1 = llm.weight "norm" : tensor<32xf32>
    %1 = llm.rmsnorm %0, %w_1 {eps = 1.000000e-05 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
    %w_2 = llm.weight "head" : tensor<64x32xf32>
    %2 = llm.linear %1, %w_2 : (tensor<4x32xf32>, tensor<64x32xf32>) -> tensor<4x64xf32>
    %3 = llm.argmax %2 {axis = -1 : i64} : (tensor<4x64xf32>) -> tensor<4xi64>
    func.return %2, %3 : tensor<4x64xf32>, tensor<4xi64>
  }
}
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny"
    r = pimc_process("compile", "tiny-llama", "--target", "cpu-a76", "--seq-len", 8, "--context", 32, "-o", path)
    return path, r


@pytest.fixture(scope="module")
def bundle(compiled) -> Path:
    assert_ok(compiled[1])
    return compiled[0]


@pytest.fixture(scope="module")
def api_run(bundle):
    return pimc.load(bundle).run(PROMPT, 5)


# ----------------------------------------------------------------------------- happy paths


def test_version():
    r = pimc_process("--version")
    assert_ok(r)
    assert r.out == f"pimc {pimc.__version__}\n"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ((), "compile"),
        (("compile",), "--target"),
        (("run",), "--input-ids"),
        (("estimate",), "--wbits"),
        (("report",), "--format"),
        (("opt",), "--passes"),
        (("targets",), "show"),
        (("targets", "list"), "presets"),
        (("targets", "show"), "--json"),
    ],
)
def test_help_of_every_command(command, expected):
    r = pimc_inprocess(*command, "--help")
    assert_ok(r)
    assert "Usage" in r.out and expected in r.out


def test_compile_writes_a_bundle(compiled):
    path, r = compiled
    assert_ok(r)
    assert r.out.startswith(f"wrote {path}\n")
    assert "# pimc report: tiny-llama on cpu-a76" in r.out
    names = {p.name for p in path.iterdir()}
    assert names == {"program.mlir", "llm.mlir", "weights.safetensors", "target.toml", "schedule.json", "manifest.json"}
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"] == "tiny-llama" and manifest["target"] == "cpu-a76"
    assert manifest["options"]["seq_len"] == 8 and manifest["options"]["context"] == 32
    assert [p.name for p in path.parent.iterdir()] == ["tiny"]  # no staging directories left


def test_run_json(bundle, api_run):
    r = pimc_process("run", bundle, "--input-ids", IDS, "--tokens", 5, "--json")
    assert_ok(r)
    data = json.loads(r.out)  # stdout is exactly one JSON object
    assert isinstance(data, dict) and {"tokens", "report"} <= set(data)
    assert data["tokens"] == api_run.tokens and len(data["tokens"]) == 5
    assert data["report"]["run"]["generated_tokens"] == 5
    assert data["report"]["run"]["latency_s"] == pytest.approx(api_run.report.data["run"]["latency_s"], rel=1e-12)
    assert data["report"]["model"] == "tiny-llama"


def test_run_save_logits(bundle, api_run, tmp_path):
    out = tmp_path / "sub" / "logits.npy"
    r = pimc_process("run", bundle, "--input-ids", IDS, "--tokens", 5, "--save-logits", out)
    assert_ok(r)
    assert r.out.startswith("tokens: " + " ".join(map(str, api_run.tokens)) + "\n")
    logits = np.load(out)
    assert logits.dtype == np.float32
    assert logits.shape == (8 + 5 - 1, 512)
    np.testing.assert_array_equal(logits, api_run.logits)
    assert [p.name for p in out.parent.iterdir()] == ["logits.npy"]  # no temporary file left


def test_estimate_json():
    r = pimc_process("estimate", "tiny-llama", "--target", "cpu-a76", "--seq-len", 8, "--context", 32, "--json")
    assert_ok(r)
    data = json.loads(r.out)
    expected = pimc.estimate("tiny-llama", "cpu-a76", seq_len=8, context=32).data
    assert data["prefill"] == expected["prefill"] and data["decode"] == expected["decode"]
    assert data["prefill"]["latency_s"] > 0 and data["tokens_per_s"] > 0


def test_report_json_and_md(bundle):
    r = pimc_inprocess("report", bundle, "--format", "json")
    assert_ok(r)
    data = json.loads(r.out)
    assert data == json.loads(pimc.load(bundle).report().to_json())
    assert data["prefill"]["tokens"] == 8 and data["decode"]["context"] == 32
    r = pimc_inprocess("report", bundle)
    assert_ok(r)
    assert r.out.startswith("# pimc report: tiny-llama on cpu-a76\n")
    assert "| tokens/s |" in r.out and "| cpu | cpu |" in r.out


def test_opt_round_trip(tmp_path):
    file = tmp_path / "small.mlir"
    file.write_text(SMALL_MLIR)
    r = pimc_inprocess("opt", file)
    assert_ok(r)
    assert r.out == print_module(parse_module(SMALL_MLIR))
    file2 = tmp_path / "again.mlir"
    file2.write_text(r.out)
    assert pimc_inprocess("opt", file2).out == r.out  # printing is a fixed point


def test_opt_passes_lower_to_cpu(tmp_path):
    file = tmp_path / "small.mlir"
    file.write_text(SMALL_MLIR)
    r = pimc_inprocess("opt", file, "--passes", "quantize{bits=4},map{target=cpu-a76},convert-llm-to-cpu")
    assert_ok(r)
    assert r.out.count("cpu.kernel") == 4
    assert re.findall(r"= (llm\.\w+)", r.out) == ["llm.weight"] * 3  # only weights stay `llm` ops
    assert "int4" in r.out  # the quantized linear kept its weight format
    parse_module(r.out)  # the output verifies


def test_targets_list():
    r = pimc_inprocess("targets", "list")
    assert_ok(r)
    names = [line.split("\t")[0] for line in r.out.splitlines()]
    assert {"cpu-a76", "cpu-i7-9700k"} <= set(names) and names == sorted(names)  # other kinds add presets


def test_targets_show():
    r = pimc_inprocess("targets", "show", "cpu-a76")
    assert_ok(r)
    assert 'name = "cpu-a76"' in r.out and "capacity_bytes = 8589934592" in r.out
    r = pimc_inprocess("targets", "show", "cpu-a76", "--json")
    assert_ok(r)
    data = json.loads(r.out)
    assert data["name"] == "cpu-a76"
    assert data["devices"][0]["cores"] == 4 and data["memories"][0]["name"] == "dram"


# ----------------------------------------------------------------------------- errors


def _config_folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    return folder


def _bad_toml(tmp_path: Path) -> Path:
    text = (Path(pimc.targets.__file__).parent / "presets" / "cpu-a76.toml").read_text()
    bad = text.replace("cores = 4 ", 'cores = "four" ', 1)
    assert bad != text
    path = tmp_path / "bad-target.toml"
    path.write_text(bad)
    return path


def _compile_args(model, *more):
    return ("compile", model, "--seq-len", 8, "--context", 32, *more)


LLAMA = {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 2}

# name -> (args from (tmp_path, bundle), fragments the one-line message must contain)
ERROR_CASES = {
    "missing-model-file": (lambda t, b: _compile_args(t / "nope" / "config.json", "-o", t / "out"), ["no such file"]),
    "malformed-config": (
        lambda t, b: _compile_args(_config_folder(t, '{"model_type": "llama",'), "-o", t / "out"),
        ["config.json:1:", "malformed JSON"],
    ),
    "config-missing-key": (
        lambda t, b: _compile_args(_config_folder(t, json.dumps({k: v for k, v in LLAMA.items() if k != "hidden_size"})), "-o", t / "out"),
        ["config.json", "missing required key 'hidden_size'"],
    ),
    "unknown-preset": (lambda t, b: _compile_args("llama9-99b", "-o", t / "out"), ["unknown model preset 'llama9-99b'", "tiny-llama"]),
    "unknown-target": (lambda t, b: _compile_args("tiny-llama", "-t", "tpu-v9", "-o", t / "out"), ["unknown target 'tpu-v9'", "cpu-a76"]),
    "invalid-target-toml": (
        lambda t, b: _compile_args("tiny-llama", "-t", _bad_toml(t), "-o", t / "out"),
        ["bad-target.toml", "cores", "valid integer"],
    ),
    "bad-set": (lambda t, b: _compile_args("tiny-llama", "--set", "cpu.cores", "-o", t / "out"), ["--set 'cpu.cores'", "DEVICE.FIELD=VALUE"]),
    "bad-set-field": (lambda t, b: _compile_args("tiny-llama", "--set", "cpu.bogus=3", "-o", t / "out"), ["no field 'bogus'"]),
    "opt-verify-fails": (
        lambda t, b: ("opt", _write(t / "bad.mlir", SMALL_MLIR.replace("tensor<4x64xf32>", "tensor<4x63xf32>"))),
        ["bad.mlir", "verification failed"],
    ),
    "opt-parse-fails": (lambda t, b: ("opt", _write(t / "junk.mlir", "builtin.module { %x = llm.nosuchop }\n")), ["junk.mlir"]),
    "unknown-pass": (lambda t, b: ("opt", _write(t / "ok.mlir", SMALL_MLIR), "--passes", "nosuchpass"), ["nosuchpass", "available"]),
    "bad-input-ids": (lambda t, b: ("run", b, "--input-ids", "1,x,3"), ["--input-ids '1,x,3'", "integers"]),
    "wrong-prompt-length": (lambda t, b: ("run", b, "--input-ids", "1,2,3"), ["3 tokens", "--seq-len 8"]),
    "run-non-bundle": (lambda t, b: ("run", t, "--input-ids", IDS), ["not a pimc bundle"]),
    "capacity-infeasible": (
        lambda t, b: ("estimate", "llama2-7b", "-t", "cpu-a76", "--seq-len", 16, "--context", 32),
        ["memory 'dram'", "capacity"],
    ),
    "report-bad-format": (lambda t, b: ("report", b, "--format", "html"), ["--format 'html'"]),
    "tensor-fits-no-memory": (  # the embedding table (262144 bytes) is larger than the only memory
        lambda t, b: _compile_args("tiny-llama", "-t", _shrunk_target(t, "cpu-a76", 200_000), "-o", t / "out"),
        ["memory 'dram' overflows", "weight 'w:model.embed_tokens.weight' needs 262144 bytes", "'dram' (200000 bytes)"],
    ),
    "weights-fit-nowhere-hetero": (  # edge-soc with both memories shrunk: no device can hold the table
        lambda t, b: _compile_args("tiny-llama", "-t", _shrunk_target(t, "edge-soc", 200_000), "-o", t / "out"),
        ["memory 'ddr4' overflows", "weight 'w:model.embed_tokens.weight' needs 262144 bytes"],
    ),
}
SUBPROCESS_ERRORS = ("missing-model-file", "invalid-target-toml", "bad-input-ids", "tensor-fits-no-memory")


def _shrunk_target(tmp_path: Path, preset: str, capacity: int) -> Path:
    """A preset with every memory's capacity_bytes set to `capacity`."""
    text = (Path(pimc.targets.__file__).parent / "presets" / f"{preset}.toml").read_text()
    small = re.sub(r"(?m)^capacity_bytes = \d+", f"capacity_bytes = {capacity}", text)
    assert small.count(f"capacity_bytes = {capacity}") == text.count("\ncapacity_bytes = ") >= 1
    path = tmp_path / f"small-{preset}.toml"
    path.write_text(small)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _check_error_case(name: str, runner, tmp_path: Path, bundle: Path) -> None:
    make_args, fragments = ERROR_CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    args = make_args(work, bundle)
    before = sorted(p.name for p in work.rglob("*"))
    bundle_before = sorted((p.name, p.stat().st_mtime_ns) for p in bundle.iterdir())
    assert_user_error(runner(*args), *fragments)
    assert not (work / "out").exists()
    assert sorted(p.name for p in work.rglob("*")) == before  # nothing created, no staging dirs
    assert sorted((p.name, p.stat().st_mtime_ns) for p in bundle.iterdir()) == bundle_before


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_user_error(name, tmp_path, bundle):
    _check_error_case(name, pimc_inprocess, tmp_path, bundle)


@pytest.mark.parametrize("name", SUBPROCESS_ERRORS)
def test_user_error_as_a_process(name, tmp_path, bundle):
    _check_error_case(name, pimc_process, tmp_path, bundle)


def test_usage_error_exits_2():
    r = pimc_inprocess("compile")  # missing MODEL and -o
    assert r.code == 2
    assert "Traceback" not in r.err

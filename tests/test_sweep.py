"""`pimc sweep`: spec validation, the same results on a local pool and a Dask cluster, resuming a
killed sweep without recomputing finished points, failed points recorded, and the Pareto front."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import struct
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

import pimc
import pimc.cli
import pimc.sweep.runner as runner
from pimc.errors import SweepError
from pimc.sweep import load_spec, pareto_front, run_sweep
from pimc.sweep.evaluate import evaluate

GRID_2X2 = """
name = "grid"
[base]
model = "tiny-llama"
target = "zcu102-meadow"
seq_len = 8
context = 16
abits = 8
[grid]
fpga.offchip_gbps = [6.0, 12.0]
wbits = [4, 8]
"""

FAILING = """
[base]
model = "tiny-llama"
target = "cpu-a76"
seq_len = 8
context = 16
[[points]]
wbits = 8
[[points]]
wbits = 8
"dram.capacity_bytes" = 100000
[[points]]
wbits = 4
"""


def write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# --- the spec -------------------------------------------------------------------------------------


def test_grid_expands_in_order_with_overrides(tmp_path):
    spec = load_spec(write_spec(tmp_path, GRID_2X2))
    assert spec.name == "grid" and spec.axes == ("fpga.offchip_gbps", "wbits")
    assert [(p.params["fpga.offchip_gbps"], p.params["wbits"]) for p in spec.points] == [(6.0, 4), (6.0, 8), (12.0, 4), (12.0, 8)]
    assert [p.target.device("fpga").offchip_gbps for p in spec.points] == [6.0, 6.0, 12.0, 12.0]
    assert len({p.key for p in spec.points}) == 4
    assert all(p.options.abits == 8 and p.options.seq_len == 8 for p in spec.points)


@pytest.mark.parametrize("text, message", [
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\nwbits = [4, 3.5]",
     "grid point 1 (wbits=3.5): wbits: unsupported weight bits 3.5"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\nmodle = 'x'", "base.modle: unknown setting"),
    ("[base]\ntarget = 'cpu-a76'\n[[points]]\nwbits = 4", "points[0]: model: missing required field"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\nwbits = 4", "grid.wbits: expected a non-empty list"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\nseq_len = 0", "base: seq_len: Input should be greater than 0"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\ncpu.coers = [2, 4]", "has no field 'coers'"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\n'cpu.cores' = [4, -1]",
     "grid point 1 (cpu.cores=-1): cpu-a76.toml (with --set cpu.cores=-1): devices['cpu'].cores: Input should be greater than 0"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\nwbits = [4]\n[[points]]\nwbits = 8", "either [grid] or [[points]]"),
    ("[base]\nmodel = 'no-such-model'\ntarget = 'cpu-a76'", "model: "),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'no-such-target'", "unknown target 'no-such-target'"),
    ("grdi = {}", "grdi: unknown field"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\nsolver = ['heft', 'ilp']", "grid point 1 (solver=\"ilp\"): solver: solver 'ilp'"),
    ("[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\nobjective = 'speed'", "base: objective: --objective 'speed'"),
    ("[base\n", "invalid TOML"),
])
def test_bad_spec_is_one_error_naming_the_field(tmp_path, text, message):
    path = write_spec(tmp_path, text)
    with pytest.raises(SweepError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_bad_spec_exits_2_with_one_line_and_no_output(tmp_path):
    path = write_spec(tmp_path, "[base]\nmodel = 'tiny-llama'\ntarget = 'cpu-a76'\n[grid]\nabits = [8, 9]")
    code, out, err = cli("sweep", path, "-o", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pimc: error: ") and "abits: unsupported activation bits 9" in err
    assert not (tmp_path / "out").exists()


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    pimc.cli._state["debug"] = False
    with mock.patch.object(sys, "argv", ["pimc", *map(str, args)]), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exit_info:
            pimc.cli.main()
    return exit_info.value.code, out.getvalue(), err.getvalue()


# --- running --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_on_local_pool(tmp_path_factory) -> tuple[Path, Path]:
    """The 2x2 grid swept once on the local pool: (spec, output folder), what the Dask runs must equal."""
    folder = tmp_path_factory.mktemp("grid")
    spec = write_spec(folder, GRID_2X2)
    assert run_sweep(spec, folder / "local", workers=2).evaluated == 4
    return spec, folder / "local"


def sweep_on_local_cluster(spec: Path, out: Path, **cluster) -> set[int]:
    """Sweep `spec` into `out` on a Dask LocalCluster started here (`cluster`: its size and kind),
    check that it evaluated every point; the process ids of its workers."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(dashboard_address=None, **cluster) as local_cluster:
        assert run_sweep(spec, out, dask=local_cluster.scheduler_address).evaluated == 4
        with distributed.Client(local_cluster.scheduler_address, set_as_default=False) as client:
            return set(client.run(os.getpid).values())


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in ("results.csv", "results.json", "pareto.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_local_pool_and_dask_cluster_give_identical_results(grid_on_local_pool, tmp_path):
    spec, local = grid_on_local_pool
    sweep_on_local_cluster(spec, tmp_path / "dask", n_workers=1, threads_per_worker=2, processes=False)
    assert_same_outputs(local, tmp_path / "dask")

    # The figures are pimc.estimate's own, and the points really differ.
    rows = csv_rows(local / "results.csv")
    assert [r["status"] for r in rows] == ["ok"] * 4
    last = pimc.estimate("tiny-llama", "zcu102-meadow", seq_len=8, context=16, wbits=8, abits=8,
                         overrides=["fpga.offchip_gbps=12.0"])
    assert float(rows[3]["tokens_per_s"]) == last.tokens_per_s
    assert float(rows[3]["joules_per_token"]) == last.joules_per_token
    assert float(rows[3]["decode_offchip_bytes"]) == last.data["decode"]["offchip_bytes"]
    assert len({r["tokens_per_s"] for r in rows}) == 4
    assert png_size(local / "pareto.png") == (800, 550)
    data = json.loads((tmp_path / "dask" / "results.json").read_text())
    assert data["schema"] == "pimc.sweep/1" and [p["index"] for p in data["points"]] == [0, 1, 2, 3]
    assert data["pareto"] == [p["index"] for p in data["points"] if p["pareto"]]


class Killed(Exception):
    pass


def test_killed_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, GRID_2X2)
    out = tmp_path / "out"
    evaluated: list[str] = []

    def counting(job):
        evaluated.append(job.key)
        return evaluate(job)

    monkeypatch.setattr(runner, "evaluate", counting)

    def kill_after_two(record):
        if len(evaluated) == 2:
            raise Killed

    with pytest.raises(Killed):
        run_sweep(spec, out, workers=1, on_record=kill_after_two)
    assert len(evaluated) == 2
    assert len((out / "journal.jsonl").read_text().splitlines()) == 2
    assert not (out / "results.csv").exists()  # no outputs from a sweep that did not finish

    first = list(evaluated)
    resumed = run_sweep(spec, out, workers=1)
    assert resumed.evaluated == 2 and resumed.reused == 2
    assert set(evaluated[2:]) == {p.key for p in load_spec(spec).points} - set(first)
    assert [r["status"] for r in csv_rows(out / "results.csv")] == ["ok"] * 4

    assert run_sweep(spec, out, workers=1).evaluated == 0
    assert len(evaluated) == 4

    # A journal line lost (and one torn mid-write) is recomputed; nothing else is.
    lines = (out / "journal.jsonl").read_text().splitlines()
    (out / "journal.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    before = (out / "results.csv").read_bytes()
    again = run_sweep(spec, out, workers=1)
    assert again.evaluated == 2 and len(evaluated) == 6
    assert (out / "results.csv").read_bytes() == before

    assert run_sweep(spec, out, workers=1, fresh=True).evaluated == 4


def test_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = write_spec(tmp_path, FAILING)
    code, out, err = cli("sweep", spec, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, err
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "memory 'dram' overflows" in rows[1]["error"] and rows[1]["tokens_per_s"] == ""
    assert rows[1]["dram.capacity_bytes"] == "100000" and rows[0]["dram.capacity_bytes"] == ""
    assert rows[1]["pareto"] == "false"
    assert "3 points (1 error, 2 ok); evaluated 3, reused 0" in out
    # Errors are results too: a re-run does not retry them.
    assert run_sweep(spec, tmp_path / "out", workers=1).evaluated == 0


def test_equal_points_are_evaluated_once(tmp_path):
    spec = write_spec(tmp_path, FAILING.replace('"dram.capacity_bytes" = 100000', "").replace("wbits = 4", "wbits = 8"))
    result = run_sweep(spec, tmp_path / "out", workers=1)
    assert result.evaluated == 1 and len(result.rows) == 3
    assert len({r["metrics"]["tokens_per_s"] for r in result.rows}) == 1


# --- the Pareto front -----------------------------------------------------------------------------


def test_pareto_front_matches_hand_computed():
    # (tokens/s, J/token): more tokens/s and fewer joules are better.
    points = [
        (10.0, 1.0),   # 0: front (the fastest... tied with 5 in speed, cheaper)
        (8.0, 0.5),    # 1: front
        (8.0, 0.6),    # 2: dominated by 1 (same speed, more energy)
        (2.0, 0.1),    # 3: front (the most frugal)
        None,          # 4: failed point: never on the front
        (10.0, 1.2),   # 5: dominated by 0
        (5.0, 0.5),    # 6: dominated by 1
        (2.0, 0.1),    # 7: equal to 3: neither dominates the other
    ]
    assert pareto_front(points) == [True, True, False, True, False, False, False, True]
    assert pareto_front([]) == []


def test_kernel_points_trade_calls_per_second_against_joules_per_call(tmp_path):
    spec = write_spec(tmp_path, """
[base]
target = "ddr4-pud-x4"
abits = 2
[grid]
model = ["gemv:4096x4096", "gemv:11008x4096"]
wbits = [2, 4]
""")
    result = run_sweep(spec, tmp_path / "out", workers=1)
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert "tokens_per_s" not in rows[0] and [r["status"] for r in rows] == ["ok"] * 4
    direct = pimc.estimate("gemv:11008x4096", "ddr4-pud-x4", wbits=4, abits=2).data["kernel"]
    assert float(rows[3]["kernel_latency_s"]) == direct["latency_s"]
    assert float(rows[3]["kernel_energy_j"]) == direct["energy_j"]
    # The smaller matrix at fewer bits is faster and cheaper than the larger one at more bits.
    assert rows[0]["pareto"] == "true" and rows[3]["pareto"] == "false"
    assert [r["pareto"] for r in result.rows] == [r["pareto"] == "true" for r in rows]
    assert png_size(tmp_path / "out" / "pareto.png") == (800, 550)


def test_relative_target_file_and_an_edit_to_it_is_evaluated_again(tmp_path):
    from pimc.targets.load import PRESETS_DIR

    (tmp_path / "targets").mkdir()
    target = tmp_path / "targets" / "my-cpu.toml"
    target.write_text((PRESETS_DIR / "cpu-a76.toml").read_text())
    spec = write_spec(tmp_path, "[base]\nmodel = 'tiny-llama'\ntarget = 'targets/my-cpu.toml'\nseq_len = 8\ncontext = 16")
    first = run_sweep(spec, tmp_path / "out", workers=1)
    assert first.evaluated == 1 and first.rows[0]["status"] == "ok"
    assert run_sweep(spec, tmp_path / "out", workers=1).evaluated == 0
    target.write_text(target.read_text().replace("bandwidth_gb_per_s = ", "bandwidth_gb_per_s = 0.5 * 0 + ", 1))
    with pytest.raises(SweepError, match="my-cpu.toml: invalid TOML"):
        load_spec(spec)
    slower, edits = re.subn(r"bandwidth_gb_per_s = [0-9.e]+", "bandwidth_gb_per_s = 1.0", (PRESETS_DIR / "cpu-a76.toml").read_text())
    assert edits == 1
    target.write_text(slower)
    second = run_sweep(spec, tmp_path / "out", workers=1)
    assert second.evaluated == 1
    assert second.rows[0]["params"]["target"] == "targets/my-cpu.toml"
    assert second.rows[0]["metrics"]["ttft_s"] != first.rows[0]["metrics"]["ttft_s"]


def test_sweep_process_killed_with_sigkill_resumes(tmp_path):
    """The real thing: `pimc sweep` on a pool, SIGKILLed once two points are journaled, then resumed."""
    import signal
    import subprocess
    import time

    spec = write_spec(tmp_path, GRID_2X2.replace("[6.0, 12.0]", "[1.0, 3.0, 6.0, 12.0]").replace("[4, 8]", "[4, 6, 8]"))
    out = tmp_path / "out"
    journal = out / "journal.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "pimc.cli", "sweep", str(spec), "-o", str(out), "--workers", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    done = journal.read_text().count("\n")
    assert 2 <= done < 12 and not (out / "results.csv").exists()
    resumed = run_sweep(spec, out, workers=1)
    assert resumed.reused == done and resumed.evaluated == 12 - done
    assert [r["status"] for r in csv_rows(out / "results.csv")] == ["ok"] * 12


def test_a_crashing_point_is_reported_retried_and_exits_1(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, FAILING.replace('"dram.capacity_bytes" = 100000', "group = 64"))
    real = pimc.estimate

    def buggy(model, target, **options):
        if options["group"] == 64:
            raise ZeroDivisionError("division by zero")
        return real(model, target, **options)

    monkeypatch.setattr(pimc, "estimate", buggy)
    code, out, err = cli("sweep", spec, "-o", tmp_path / "out", "--workers", "1", "--json")
    assert code == 1 and "1 point(s) crashed" in err
    data = json.loads(out)  # --json: stdout holds the results and nothing else
    assert [p["status"] for p in data["points"]] == ["ok", "crash", "ok"]
    assert data["points"][1]["error"] == "ZeroDivisionError: division by zero"
    assert len((tmp_path / "out" / "journal.jsonl").read_text().splitlines()) == 2  # the crash is not kept

    monkeypatch.setattr(pimc, "estimate", real)
    retried = run_sweep(spec, tmp_path / "out", workers=1)
    assert retried.evaluated == 1 and [r["status"] for r in retried.rows] == ["ok"] * 3


def test_example_specs_are_valid():
    examples = sorted((Path(__file__).parent.parent / "examples" / "sweeps").glob("*.toml"))
    assert [p.name for p in examples] == ["meadow_bandwidth.toml", "pud_modules.toml"]
    counts = {p.name: len(load_spec(p).points) for p in examples}
    assert counts == {"meadow_bandwidth.toml": 12, "pud_modules.toml": 6}


def test_workers_and_dask_are_exclusive(tmp_path):
    code, out, err = cli("sweep", write_spec(tmp_path, FAILING), "--workers", "2", "--dask", "tcp://127.0.0.1:1")
    assert code == 2 and "--workers sizes the local pool" in err


@pytest.mark.slow
def test_dask_cluster_of_worker_processes_gives_the_local_results(grid_on_local_pool, tmp_path):
    """Workers in their own processes (pickled jobs, pimc imported there) give byte-identical outputs."""
    spec, local = grid_on_local_pool
    pids = sweep_on_local_cluster(spec, tmp_path / "dask", n_workers=2, threads_per_worker=1, processes=True)
    assert len(pids) == 2 and os.getpid() not in pids
    assert_same_outputs(local, tmp_path / "dask")
    journal = [json.loads(line) for line in (tmp_path / "dask" / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == 4 and all(r["status"] == "ok" for r in journal)


class _PiecewiseOs:
    """`os` for the journal, except that a write takes at most 1000 bytes and then lets the other
    process run: a line becomes many O_APPEND writes, which only the lock keeps together (one
    write of a whole line would be atomic without it)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data) -> int:
        n = os.write(fd, data[:1000])
        time.sleep(1e-4)
        return n


def _append_records(path: str, prefix: str, count: int, start) -> None:
    from pimc.sweep import journal as journal_module

    journal_module.os = _PiecewiseOs()  # in this forked child only
    journal = journal_module.Journal(Path(path))
    start.wait(30)  # both children append at the same time
    for i in range(count):
        journal.append({"key": f"{prefix}{i}", "status": "ok", "pad": "x" * 20000})  # lines past one pipe/page buffer


def test_concurrent_appends_keep_whole_lines(tmp_path):
    """Two processes append 40 lines of 20 kB each, 1000 bytes per write: whole lines, thanks to
    the flock (without it, the pieces interleave)."""
    import multiprocessing

    path = tmp_path / "journal.jsonl"
    context = multiprocessing.get_context("fork")  # the children need only the journal, already imported
    start = context.Barrier(2)
    procs = [context.Process(target=_append_records, args=(str(path), p, 40, start)) for p in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 80
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(f"{p}{i}" for p in "ab" for i in range(40))

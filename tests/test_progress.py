"""Progress (pimc.progress): drawn on a terminal, silent anywhere else (pipes, CI logs, CliRunner,
--json), and the same schedule whether or not the solver's progress line watches the search."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pimc import progress
from pimc.cli import app
from pimc.mapping.cpsat_solve import SolveOptions, solve_cpsat

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def terminal():
    """A console that claims to be a terminal and records what it draws; reset afterwards."""
    buffer = io.StringIO()
    progress.configure(console=Console(file=buffer, force_terminal=True, width=150))
    yield buffer
    progress.configure()


def _frames(buffer: io.StringIO) -> str:
    return ANSI.sub("", buffer.getvalue())


def test_off_when_stderr_is_not_a_terminal():
    progress.configure()
    assert not progress.enabled()  # pytest captures stderr: not a terminal
    with progress.task("anything", total=3) as bar:
        bar.advance()
    with progress.solver("search") as live:
        live.update(objective=1.0, bound=0.5, unit="s")


def test_task_bar_draws_its_updates_on_a_terminal(terminal):
    assert progress.enabled()
    with progress.task("reading weights", total=4) as bar:
        for _ in range(4):
            bar.advance()
    text = _frames(terminal)
    assert "reading weights" in text and "4/4" in text


def test_nested_stages_share_one_display_and_the_solver_line_shows_gap(terminal):
    with progress.task("simulating 3 tokens", total=3) as bar:
        bar.advance()
        with progress.solver("CP-SAT, 5 ops") as live:
            live.update(objective=2.5e-3, bound=2.0e-3, unit="s")
        bar.advance(2)
    text = _frames(terminal)
    assert "simulating 3 tokens" in text
    assert "CP-SAT, 5 ops: 1 solutions, objective 2.5 ms, bound 2 ms, gap 20.0%" in text


def test_forced_off_even_on_a_terminal(terminal):
    progress.configure(enabled=False, console=Console(file=terminal, force_terminal=True))
    with progress.task("hidden", total=1) as bar:
        bar.advance()
    assert terminal.getvalue() == ""


def test_cpsat_reports_its_solutions_and_schedules_do_not_change(terminal):
    from test_cpsat import two_device

    problem = two_device(0)
    watched = solve_cpsat(problem, SolveOptions(time_limit_s=5.0, time_unit_s=1.0))
    text = _frames(terminal)
    assert "CP-SAT, 5 ops" in text and "objective" in text and "bound" in text
    progress.configure(enabled=False)
    unwatched = solve_cpsat(problem, SolveOptions(time_limit_s=5.0, time_unit_s=1.0))
    assert watched.to_json() == unwatched.to_json()


def test_cli_under_clirunner_prints_no_progress(tiny_program, tmp_path):
    bundle = tiny_program.save(tmp_path / "tiny")
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(bundle), "--input-ids", "1,2,3,4,5,6,7,8", "--tokens", "6"])
    assert result.exit_code == 0, result.output
    assert "simulating" not in result.output and "simulating" not in result.stderr
    assert result.stderr == ""
    result = runner.invoke(app, ["run", str(bundle), "--input-ids", "1,2,3,4,5,6,7,8", "--tokens", "6", "--json"])
    assert result.exit_code == 0 and result.stderr == ""


def test_json_turns_progress_off_even_on_a_terminal(terminal, tiny_program, tmp_path):
    """`--json` configures progress off: nothing drawn although the console is a terminal."""
    bundle = tiny_program.save(tmp_path / "tiny")
    result = CliRunner().invoke(app, ["run", str(bundle), "--input-ids", "1,2,3,4,5,6,7,8", "--tokens", "6", "--json"])
    assert result.exit_code == 0
    assert "simulating" not in _frames(terminal)
    assert not progress.enabled()


def test_simulation_bar_counts_the_tokens(terminal, tiny_program):
    tiny_program.run([1, 2, 3, 4, 5, 6, 7, 8], tokens=6)
    text = _frames(terminal)
    assert "simulating 6 tokens" in text and "6/6" in text


def test_onnx_load_external_data_and_check_draw_progress(terminal, tmp_path):
    """A model with external data: loading, reading each external tensor, checking; same initializers."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from pimc.frontends.onnx.reader import load_onnx

    fixture = onnx.load(str(Path(__file__).parent / "fixtures" / "onnx" / "llama_dynamo_op18.onnx"))
    expected = {t.name: numpy_helper.to_array(t) for t in fixture.graph.initializer}
    path = tmp_path / "model.onnx"
    onnx.save(fixture, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.data", size_threshold=0)
    external = len(expected)
    model = load_onnx(path)
    text = _frames(terminal)
    assert "loading model.onnx" in text and "checking model.onnx" in text
    assert "reading external data of model.onnx" in text and f"{external}/{external}" in text
    loaded = {t.name: numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    assert loaded.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_lazy_ggml_dequantization_shows_a_status_line(terminal):
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    from pimc.frontends.ggml_weights import GgmlTensor, GgmlWeights

    values = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    blocks = quantize(values, GGMLQuantizationType.Q8_0)
    weights = GgmlWeights({"a": GgmlTensor("Q8_0", (4, 64), blocks), "b": GgmlTensor("Q8_0", (4, 64), blocks),
                           "norm": np.ones(64, np.float32)})
    assert np.allclose(weights["b"], values, atol=0.02)
    weights["norm"], weights["b"]  # a plain array and a second access: no status line
    assert "dequantizing b (Q8_0; 1 of 2 ggml weights)" in _frames(terminal)
    weights["a"]
    text = _frames(terminal)
    assert "dequantizing a (Q8_0; 2 of 2 ggml weights)" in text and "norm" not in text

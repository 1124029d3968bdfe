"""Golden-output regression kit: a pytest plugin (entry point `pimc`) with a `golden` fixture.

Hardware teams keep compiled models under review by checking their outputs against files in the
repository: IR text byte for byte, arrays (logits) within tolerances, report numbers within a relative
tolerance. `pytest --update-golden` rewrites the files from the current outputs; the diff is then
reviewed like any other change. Golden files live in `golden/` next to the test module unless the
`golden_dir` ini option (relative to the rootdir) says otherwise.

    def test_my_model(golden):
        prog = pimc.compile("my-model/", target="my-soc.toml")
        golden.check_text("my-model.mlir", pimc.ir.print_module(prog.module))
        result = prog.run([1, 2, 3], tokens=4)
        golden.check_array("my-model.logits.npy", result.logits, atol=1e-5)
        golden.check_report("my-model.report.json", result.report, rtol=1e-9)
"""

from __future__ import annotations

import difflib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

__all__ = ["Golden", "GoldenMismatch", "compare_arrays", "compare_numbers"]

MAX_DIFF_LINES = 60
MAX_REPORTED = 10


class GoldenMismatch(AssertionError):
    """An output differs from its golden file; the message is the readable diff."""


class Golden:
    """Compares outputs with golden files under `directory`, or rewrites them when `update` is set."""

    def __init__(self, directory: Path, update: bool):
        self.directory = Path(directory)
        self.update = update

    def path(self, name: str) -> Path:
        return self.directory / name

    # -- text -----------------------------------------------------------------------------------
    def check_text(self, name: str, text: str) -> None:
        """Exact comparison: IR, Markdown reports, anything meant to be byte-stable."""
        path = self.path(name)
        if self._rewrite(path, text.encode()):
            return
        expected = path.read_text()
        if text != expected:
            diff = difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "actual")
            lines = list(diff)
            shown = "".join(lines[:MAX_DIFF_LINES])
            more = f"\n... {len(lines) - MAX_DIFF_LINES} more diff lines" if len(lines) > MAX_DIFF_LINES else ""
            self._fail(path, f"text differs:\n{shown}{more}")

    check = check_text  # the name pimc's own tests grew up with

    # -- arrays ---------------------------------------------------------------------------------
    def check_array(self, name: str, actual: Any, *, rtol: float = 1e-6, atol: float = 1e-6) -> None:
        """Element-wise |actual - expected| <= atol + rtol * |expected|, same shape and dtype kind."""
        path = self.path(name)
        array = np.asarray(actual)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        if self._rewrite(path, buffer.getvalue()):
            return
        expected = np.load(path, allow_pickle=False)
        problems = compare_arrays(expected, array, rtol=rtol, atol=atol)
        if problems:
            self._fail(path, "array differs:\n" + "\n".join(problems))

    # -- report numbers -------------------------------------------------------------------------
    def check_report(self, name: str, report: Any, *, rtol: float = 1e-9, atol: float = 0.0,
                     ignore: tuple[str, ...] = ("compile_s",)) -> None:
        """Numbers within `rtol` (relative) / `atol`, everything else exactly; keys in `ignore`
        (wall-clock times by default) are left out wherever they appear."""
        path = self.path(name)
        data = _strip(_as_data(report), ignore)
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        if self._rewrite(path, text.encode()):
            return
        expected = _strip(json.loads(path.read_text()), ignore)
        problems = compare_numbers(expected, data, rtol=rtol, atol=atol)
        if problems:
            shown = problems[:MAX_DIFF_LINES]
            more = f"\n... {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
            self._fail(path, "report differs:\n" + "\n".join(shown) + more)

    # -- helpers --------------------------------------------------------------------------------
    def _rewrite(self, path: Path, content: bytes) -> bool:
        """In update mode write `content` (only when it changed) and report that the check is done."""
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
            return True
        if not path.is_file():
            raise GoldenMismatch(f"golden file {path} is missing; run pytest --update-golden to create it")
        return False

    @staticmethod
    def _fail(path: Path, message: str) -> None:
        raise GoldenMismatch(f"{path}: {message}\n(pytest --update-golden rewrites it; review the diff)")


def compare_arrays(expected: np.ndarray, actual: np.ndarray, *, rtol: float, atol: float) -> list[str]:
    """Readable differences between two arrays; empty when they match within tolerance."""
    if expected.shape != actual.shape:
        return [f"shape: expected {expected.shape}, got {actual.shape}"]
    if expected.dtype.kind != actual.dtype.kind:
        return [f"dtype: expected {expected.dtype}, got {actual.dtype}"]
    if expected.dtype.kind not in "fc":
        bad = np.argwhere(expected != actual)
    else:
        e, a = expected.astype(np.float64), actual.astype(np.float64)
        close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        bad = np.argwhere(~close)
    if len(bad) == 0:
        return []
    lines = [f"{len(bad)} of {expected.size} elements differ (rtol={rtol:g}, atol={atol:g})"]
    if expected.dtype.kind in "fc":
        delta = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        lines.append(f"max abs diff {np.nanmax(delta):.6g}")
    for index in bad[:MAX_REPORTED]:
        at = tuple(int(i) for i in index)
        lines.append(f"  at {list(at)}: expected {expected[at]!r}, got {actual[at]!r}")
    return lines


def compare_numbers(expected: Any, actual: Any, *, rtol: float, atol: float = 0.0, where: str = "") -> list[str]:
    """Paths where two JSON-like values differ: numbers beyond tolerance, anything else at all."""
    here = where or "(top)"
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in actual:
                out.append(f"{path}: missing (expected {_short(expected[key])})")
            elif key not in expected:
                out.append(f"{path}: unexpected (got {_short(actual[key])})")
            else:
                out += compare_numbers(expected[key], actual[key], rtol=rtol, atol=atol, where=path)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{here}: expected {len(expected)} items, got {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out += compare_numbers(e, a, rtol=rtol, atol=atol, where=f"{where}[{i}]")
        return out
    if _is_number(expected) and _is_number(actual):
        if math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol) or (math.isnan(expected) and math.isnan(actual)):
            return []
        rel = abs(actual - expected) / abs(expected) if expected else math.inf
        return [f"{here}: expected {expected!r}, got {actual!r} (relative diff {rel:.3g} > {rtol:g})"]
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{here}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _short(x: Any) -> str:
    text = json.dumps(x, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_data(report: Any) -> Any:
    """A `pimc.Report`, a JSON string or plain data, as plain data."""
    if hasattr(report, "data") and isinstance(report.data, Mapping):
        return json.loads(json.dumps(report.data))
    if isinstance(report, str):
        return json.loads(report)
    return json.loads(json.dumps(report))


def _strip(data: Any, ignore: tuple[str, ...]) -> Any:
    if isinstance(data, Mapping):
        return {k: _strip(v, ignore) for k, v in data.items() if k not in ignore}
    if isinstance(data, list):
        return [_strip(v, ignore) for v in data]
    return data


# -- pytest plugin (registered through the `pytest11` entry point) ------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pimc-golden")
    group.addoption("--update-golden", action="store_true", help="rewrite golden files from the current outputs")
    parser.addini("golden_dir", "folder of golden files, relative to the rootdir (default: golden/ next to each test module)")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """Checks outputs against golden files; `--update-golden` rewrites them."""
    configured = request.config.getini("golden_dir")
    directory = Path(request.config.rootpath, configured) if configured else Path(request.path).parent / "golden"
    return Golden(directory, bool(request.config.getoption("--update-golden")))

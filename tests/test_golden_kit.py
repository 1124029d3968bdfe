"""The golden-output kit (`pimc.testing`) as a user's project sees it: through pytest's entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pimc.testing import compare_arrays, compare_numbers

USER_TEST = '''
import numpy as np

def test_outputs(golden):
    golden.check_text("model.mlir", "func.func @f() {{\\n  %0 = llm.add\\n}}\\n")
    golden.check_array("logits.npy", np.array([[1.0, 2.0], [3.0, {last}]], dtype=np.float32), atol=1e-4)
    golden.check_report("report.json", {{"model": "m", "ttft_s": {ttft}, "compile_s": {compile_s}}}, rtol=1e-3)
'''


def _write_user_test(pytester, last=4.0, ttft=0.5, compile_s=1.0):
    pytester.makepyfile(test_user=USER_TEST.format(last=last, ttft=ttft, compile_s=compile_s))


def test_update_then_pass(pytester):
    _write_user_test(pytester)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    golden = pytester.path / "golden"
    assert sorted(p.name for p in golden.iterdir()) == ["logits.npy", "model.mlir", "report.json"]
    assert json.loads((golden / "report.json").read_text()) == {"model": "m", "ttft_s": 0.5}  # wall time left out
    np.testing.assert_array_equal(np.load(golden / "logits.npy"), [[1, 2], [3, 4]])
    # Within tolerance: logits off by 5e-5 (atol 1e-4), ttft off by 0.02% (rtol 0.1%), compile time ignored.
    _write_user_test(pytester, last=4.00005, ttft=0.5001, compile_s=99.0)
    pytester.runpytest().assert_outcomes(passed=1)


def test_missing_golden_file_says_how_to_create_it(pytester):
    _write_user_test(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden*model.mlir is missing; run pytest --update-golden to create it*"])


def test_failures_are_readable_diffs(pytester):
    _write_user_test(pytester)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    (pytester.path / "golden" / "model.mlir").write_text("func.func @f() {\n  %0 = llm.mul\n}\n")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model.mlir: text differs:*", "*-  %0 = llm.mul*", "*+  %0 = llm.add*"])

    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    _write_user_test(pytester, last=4.5)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*logits.npy: array differs:*", "*1 of 4 elements differ*", "*at [[]1, 1[]]: expected*4.0*, got*4.5*"])

    _write_user_test(pytester, ttft=0.6)
    (pytester.path / "golden" / "logits.npy").unlink()
    pytester.runpytest("--update-golden", "-k", "nothing")  # no test selected: nothing rewritten
    assert not (pytester.path / "golden" / "logits.npy").exists()
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    _write_user_test(pytester, ttft=0.7)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*report.json: report differs:*", "*ttft_s: expected 0.6, got 0.7 (relative diff 0.167 > 0.001)*"])


def test_golden_dir_ini_option(pytester):
    pytester.makeini("[pytest]\ngolden_dir = expected/outputs\n")
    _write_user_test(pytester)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    assert (pytester.path / "expected" / "outputs" / "model.mlir").is_file()


def test_compare_arrays_reports_shape_dtype_and_positions():
    a = np.zeros((2, 3), np.float32)
    assert compare_arrays(a, a.copy(), rtol=0, atol=0) == []
    assert compare_arrays(a, np.zeros((3, 2), np.float32), rtol=0, atol=0) == ["shape: expected (2, 3), got (3, 2)"]
    assert compare_arrays(a, np.zeros((2, 3), np.int32), rtol=0, atol=0) == ["dtype: expected float32, got int32"]
    b = a.copy()
    b[1, 2] = 0.25
    lines = compare_arrays(a, b, rtol=0, atol=0.1)
    assert lines[:2] == ["1 of 6 elements differ (rtol=0, atol=0.1)", "max abs diff 0.25"]
    assert lines[2] == "  at [1, 2]: expected np.float32(0.0), got np.float32(0.25)"
    ints = np.arange(4)
    assert compare_arrays(ints, ints + (ints == 3), rtol=1, atol=1)[0] == "1 of 4 elements differ (rtol=1, atol=1)"


@pytest.mark.parametrize(
    "expected, actual, problems",
    [
        ({"a": 1.0, "b": [1, 2]}, {"a": 1.0000001, "b": [1, 2]}, []),
        ({"a": 1.0}, {"a": 1.1}, ["a: expected 1.0, got 1.1 (relative diff 0.1 > 1e-06)"]),
        ({"a": {"b": "x"}}, {"a": {"b": "y"}}, ['a.b: expected "x", got "y"']),
        ({"a": 1}, {"c": 1}, ["a: missing (expected 1)", "c: unexpected (got 1)"]),
        ({"a": [1, 2]}, {"a": [1]}, ["a: expected 2 items, got 1"]),
        ({"a": [0.0, 2.0]}, {"a": [0.0, 3.0]}, ["a[1]: expected 2.0, got 3.0 (relative diff 0.5 > 1e-06)"]),
        ({"ok": True}, {"ok": 1}, ["ok: expected true, got 1"]),
    ],
)
def test_compare_numbers(expected, actual, problems):
    assert compare_numbers(expected, actual, rtol=1e-6) == problems

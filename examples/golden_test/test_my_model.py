"""A golden test as a hardware team would keep one in its own CI: its model on its target.

    pytest examples/golden_test                    # compare with the files in golden/
    pytest examples/golden_test --update-golden    # rewrite them from the current outputs; review the diff

The `golden` fixture comes from pimc's pytest plugin (installed with pimc, nothing to configure):
IR text must match byte for byte, logits within tolerances, report numbers within a relative tolerance.
"""

from pathlib import Path

import pytest

import pimc
from pimc.ir import print_module

HERE = Path(__file__).parent
PROMPT = [3, 1, 4, 1, 5, 9, 2, 6]
REPORT_KEYS = ("model", "target", "prefill", "decode", "ttft_s", "tokens_per_s", "joules_per_token", "devices", "run")
"""The report's contract keys (never renamed) plus the run's totals: a new report section added by a later
pimc does not fail the test, a changed number does. The schedule itself is in the program text above."""


@pytest.fixture(scope="module")
def program():
    # my-model/ holds only a config.json: weights are seeded random (a real team points at its checkpoint).
    return pimc.compile(str(HERE / "my-model"), target=str(HERE / "my-soc.toml"), seq_len=len(PROMPT),
                        context=32, wbits=8, abits=8)


def test_lowered_program(program, golden):
    golden.check_text("my-model.my-soc.mlir", print_module(program.module))


def test_generation(program, golden):
    result = program.run(PROMPT, tokens=4)
    assert len(result.tokens) == 4
    golden.check_array("my-model.my-soc.logits.npy", result.logits, rtol=1e-5, atol=1e-5)
    golden.check_report("my-model.my-soc.report.json", {k: result.report.data[k] for k in REPORT_KEYS}, rtol=1e-9)

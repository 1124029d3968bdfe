"""Golden files: the `llm` IR and the lowered cpu-a76 program of tiny-llama, byte for byte.

`pytest tests/test_golden.py --update-golden` rewrites them; review the diff before committing.
"""

from __future__ import annotations

import pimc
from pimc.ir import parse_module, print_module


def _compile() -> pimc.Program:
    return pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32)


def test_tiny_llama_llm_ir(golden, tiny_program):
    assert tiny_program.llm_ir.startswith("builtin.module")
    golden.check("tiny-llama.llm.mlir", tiny_program.llm_ir)


def test_tiny_llama_cpu_a76_program(golden, tiny_program):
    text = print_module(tiny_program.module)
    assert "cpu.kernel" in text
    golden.check("tiny-llama.cpu-a76.mlir", text)


def test_two_compiles_print_identical_text():
    a, b = _compile(), _compile()
    assert a.llm_ir == b.llm_ir
    assert print_module(a.module) == print_module(b.module)
    assert a.schedules == b.schedules


def test_printed_program_round_trips(tiny_program):
    text = print_module(tiny_program.module)
    assert print_module(parse_module(text)) == text
    assert print_module(parse_module(tiny_program.llm_ir)) == tiny_program.llm_ir

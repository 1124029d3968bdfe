"""Reading, printing and running passes on pimc IR: one xDSL context with every pimc dialect."""

from __future__ import annotations

import io

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func
from xdsl.passes import PassPipeline
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException, ParseError, VerifyException

from pimc.dialects.cim import CIM
from pimc.dialects.cpu import CPU
from pimc.dialects.fpga import FPGA
from pimc.dialects.llm import LLM
from pimc.dialects.systolic import SYSTOLIC
from pimc.dialects.pud import PUD
from pimc.errors import PimcError
from pimc.passes import all_passes


DIALECTS = (Builtin, Func, LLM, CPU, FPGA, CIM, SYSTOLIC, PUD)
"""Every dialect pimc IR may contain (one entry per device dialect)."""


def make_context() -> Context:
    ctx = Context()
    for dialect in DIALECTS:
        ctx.load_dialect(dialect)
    return ctx


def parse_module(text: str, source: str = "<input>") -> ModuleOp:
    """Parse and verify; errors become one line naming the source and the position."""
    try:
        module = Parser(make_context(), text, source).parse_module()
    except ParseError as e:
        message = _first_line(e)  # xDSL's message starts with source:line:column
        raise PimcError(message if message.startswith(source) else f"{source}: {message}") from None
    verify(module, source)
    return module


def verify(module: ModuleOp, source: str = "<module>") -> None:
    try:
        module.verify()
    except (VerifyException, DiagnosticException) as e:
        raise PimcError(f"{source}: verification failed: {_first_line(e)}") from None


def print_module(module: ModuleOp, generic: bool = False) -> str:
    stream = io.StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    stream.write("\n")
    return stream.getvalue()


def run_passes(module: ModuleOp, spec: str) -> None:
    """Apply a comma-separated pipeline (`p1,p2{opt=v}`) in place, verifying after each pass."""
    if not spec.strip():
        return
    available = all_passes()
    try:
        pipeline = PassPipeline.parse_spec(available, spec)
    except (Exception, ArgSpecParseError) as e:  # xDSL reports bad specs with several error types (one a BaseException)
        raise PimcError(f"--passes '{spec}': {_first_line(e)} (available: {', '.join(available)})") from None
    ctx = make_context()
    for p in pipeline.passes:
        p.apply(ctx, module)
        verify(module, f"after pass '{p.name}'")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # xDSL parse errors show the source line and a caret: keep position and message.
    return " ".join(lines[:1] + [line for line in lines[1:] if not set(line) <= set("^~ ")][-1:])

"""Execute a module's prefill/decode functions with the xDSL interpreter, and generate tokens.

The same loop drives the `llm` reference and lowered device programs (their ops share kernels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions

from pimc.dialects.cim_semantics import CimFunctions
from pimc.dialects.cpu_semantics import CpuFunctions
from pimc.dialects.fpga_semantics import FpgaFunctions
from pimc.dialects.llm_semantics import LlmFunctions, RuntimeState, set_state
from pimc.dialects.systolic_semantics import SystolicFunctions
from pimc.dialects.pud_semantics import PudFunctions
from pimc import progress
from pimc.errors import PimcError
from pimc.timeline import TimelineRecorder


INTERPRETER_FUNCTIONS = (FuncFunctions, LlmFunctions, CpuFunctions, FpgaFunctions, CimFunctions, SystolicFunctions, PudFunctions)
"""The semantics of every dialect a program may contain (one entry per device dialect)."""


@dataclass(frozen=True)
class Generation:
    tokens: list[int]
    """Generated token ids (the first comes from prefill)."""
    logits: np.ndarray
    """float32 [positions, vocab]: every prompt position, then one row per decode step."""


class Executor:
    """Runs `prefill` and `decode` of a module on one weight store, keeping KV caches between calls."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, np.ndarray], recorder: TimelineRecorder | None = None):
        self.module, self.weights, self.recorder = module, weights, recorder
        self.interpreter = Interpreter(module, listeners=(recorder,) if recorder else ())
        for functions in INTERPRETER_FUNCTIONS:
            self.interpreter.register_implementations(functions())
        self.reset()

    def stats(self) -> dict:
        """What the device simulators observed in this interpreter (e.g. ADC error), by dialect;
        semantics classes offer it as `run_stats(interpreter) -> dict`."""
        out = {}
        for functions in INTERPRETER_FUNCTIONS:
            report = getattr(functions, "run_stats", None)
            if report is not None:
                out.update(report(self.interpreter))
        return out

    def reset(self) -> None:
        set_state(self.interpreter, RuntimeState(self.weights))

    def call(self, phase: str, ids: np.ndarray, positions: np.ndarray, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if self.recorder is not None:
            self.recorder.begin(phase, step)
        logits, next_ids = self.interpreter.call_op(phase, (ids.astype(np.int64), positions.astype(np.int64)))
        return logits, next_ids

    def function_seq_len(self, phase: str) -> int:
        fn = self.interpreter.get_op_for_symbol(phase)
        return fn.function_type.inputs.data[0].get_shape()[0]

    def generate(self, prompt: Sequence[int], n_tokens: int) -> Generation:
        """Greedy generation: prefill the prompt, then feed each new token back through decode."""
        seq = self.function_seq_len("prefill")
        if len(prompt) != seq:
            raise PimcError(f"the prompt has {len(prompt)} tokens; this program was compiled for --seq-len {seq}")
        if n_tokens < 1:
            raise PimcError(f"--tokens must be at least 1, got {n_tokens}")
        self.reset()
        with progress.task(f"simulating {n_tokens} tokens", total=n_tokens) as bar:
            logits, next_ids = self.call("prefill", np.asarray(prompt), np.arange(seq))
            rows, tokens = [logits], [int(next_ids[-1])]
            bar.advance()
            for position in range(seq, seq + n_tokens - 1):
                step = position - seq + 1
                logits, next_ids = self.call("decode", np.asarray([tokens[-1]]), np.asarray([position]), step)
                rows.append(logits)
                tokens.append(int(next_ids[-1]))
                bar.advance()
        return Generation(tokens, np.concatenate(rows).astype(np.float32))

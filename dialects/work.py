"""What one operator asks of a device: arithmetic and bytes, independent of any hardware.

The dialect counts the work of each op (see `llm_work`); each device kind's cost model in
`pimc.targets` turns a `Work` into seconds and joules. This is the only interface between the two.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodedWeight:
    """A weight matrix of integer codes counted in `Work.weight_bytes`, as the IR quantized it.

    A device whose kernels keep weights in a storage format of their own (a CPU reading llama.cpp's
    blocks: `CpuDevice.weight_format`) prices this matrix in that format instead."""

    n: int
    """Outputs (rows of the [n, k] matrix)."""
    k: int
    """Inputs."""
    code_bits: float
    """Bits per weight code (1.6 for ternary)."""
    stored_bytes: float
    """Bytes of the codes and their scales (and zero points) as the IR stores them."""


@dataclass(frozen=True)
class Work:
    op: str
    """Operation name, e.g. "llm.linear"."""
    flops: float
    """Arithmetic operations (one multiply-accumulate counts as 2)."""
    compute_bits: int
    """Operand bit width that sets the compute rate (the weight bits of a linear, else 32)."""
    weight_bytes: float
    """Constant weight bytes read, at their storage width (low-bit codes plus scales)."""
    input_bytes: float
    """Activation and state (KV cache) bytes read."""
    output_bytes: float
    """Bytes written."""
    dims: dict[str, int] = field(default_factory=dict)
    """Named problem sizes for mechanism-level cost models, e.g. a linear's rows, n (outputs), k (inputs)."""
    weight_bits: float = 32.0
    """Storage bits per weight code (1.6 for ternary); 32 when the op has no low-bit weight."""
    act_bits: float = 32.0
    """Bits per input activation code (a linear's `aquant`); 32 for float inputs."""
    coded_weights: tuple[CodedWeight, ...] = ()
    """The integer-coded weight matrices among `weight_bytes` (a bias, float weights and llama.cpp
    block weights are not listed)."""
    hints: dict[str, float] = field(default_factory=dict)
    """Facts graph passes attached to the op as `pimc.hint.<key>` attributes (e.g. an FPGA dataflow
    or a packed weight size) for the cost models that know them; other models ignore them."""

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.input_bytes + self.output_bytes

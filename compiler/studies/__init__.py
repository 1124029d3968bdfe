"""Published experiments pimc reproduces, each defined once for its bench script, example and tests."""

PER_CHANNEL = 1 << 16
"""A quantization group longer than any input dimension: one scale per output channel."""

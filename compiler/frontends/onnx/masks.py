"""What an attention mask or a pair of rotary tables computed for positions 0..S-1 means.

The importer binds the attention mask to ones and the positions to 0..S-1, so a graph's mask and
RoPE tables fold to constants. Raising them needs their meaning back: a mask is causal (optionally
with a sliding window); a cos/sin pair is the rotary embedding of some theta and rotary dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pimc.dialects.llm_semantics import rope_tables

MASKED_BELOW = -1e4
"""Additive mask entries at or below this hide a key (exporters use -inf or the float32 minimum)."""


def visible_from_mask(mask: np.ndarray, queries: int, keys: int) -> np.ndarray | None:
    """The [queries, keys] visibility of an additive float or boolean mask, or None when the mask varies
    over batch or heads, or has entries that are neither 0 nor hiding (a bias, not a mask)."""
    if mask.ndim < 2 or mask.shape[-2] not in (1, queries) or mask.shape[-1] not in (1, keys):
        return None
    lead = mask.reshape(-1, *mask.shape[-2:])
    if not all(np.array_equal(lead[0], m) for m in lead[1:]):
        return None
    m = np.broadcast_to(lead[0], (queries, keys))
    if m.dtype == bool:
        return m.copy()
    hidden = m <= MASKED_BELOW
    if np.any(m[~hidden] != 0):
        return None
    return ~hidden


def causal_window(visible: np.ndarray) -> tuple[bool, int | None] | None:
    """(True, window) when `visible` [S, S] is the causal mask of positions 0..S-1 with a sliding window
    (None when no key is hidden by it), or None when it is not causal at all."""
    s = visible.shape[0]
    i, j = np.arange(s)[:, None], np.arange(s)[None, :]
    if np.array_equal(visible, j <= i):
        return True, None
    for window in range(1, s):
        if np.array_equal(visible, (j <= i) & (j > i - window)):
            return True, window
    return None


@dataclass(frozen=True)
class RopeSpec:
    theta: float
    rotary_dim: int
    style: str  # "half" | "interleaved"


def rope_from_tables(cos: np.ndarray, sin: np.ndarray, seq: int) -> RopeSpec | None:
    """The RoPE whose tables for positions 0..seq-1 are `cos` and `sin` ([seq, rotary_dim] after dropping
    unit axes), or None. Needs two positions to see a frequency."""
    if seq < 2 or cos.shape != sin.shape:
        return None
    c, s = np.squeeze(cos), np.squeeze(sin)
    if c.ndim != 2 or c.shape[0] != seq:
        return None
    rd = c.shape[1]
    if rd % 2 or not np.allclose(c[0], 1.0) or not np.allclose(s[0], 0.0):
        return None
    for style in ("half", "interleaved"):
        first = c[1, : rd // 2] if style == "half" else c[1, 0::2]
        first_sin = s[1, : rd // 2] if style == "half" else s[1, 0::2]
        inv_freq = np.arctan2(first_sin.astype(np.float64), first.astype(np.float64))
        if rd < 4 or inv_freq[1] <= 0:
            continue
        theta = float(inv_freq[1] ** (-rd / 2.0))
        for candidate in (float(round(theta)), theta):
            if candidate <= 0:
                continue
            want_cos, want_sin = rope_tables(np.arange(seq), rd, candidate)
            if style == "half":
                want_cos, want_sin = np.concatenate([want_cos] * 2, -1), np.concatenate([want_sin] * 2, -1)
            else:
                want_cos, want_sin = np.repeat(want_cos, 2, -1), np.repeat(want_sin, 2, -1)
            if np.allclose(c, want_cos, atol=2e-5) and np.allclose(s, want_sin, atol=2e-5):
                return RopeSpec(candidate, rd, style)
    return None

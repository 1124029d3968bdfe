"""Fewer cyclic-GC passes while a compile builds IR, so compile time grows linearly with the model.

With CPython's default thresholds (700, 10, 10) the collector keeps walking the young objects of
an IR that grows with every layer; on llama2-7b `estimate` that made 16 -> 32 layers cost 2.25x
CPU instead of 2x (bench/compile_scaling.py; with the collector off it is exactly 2x). Raising the
thresholds for the duration of a compile keeps it linear; reference counting still frees every
acyclic object at once, and the old thresholds are restored on exit.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

THRESHOLDS = (50_000, 20, 20)


@contextmanager
def fewer_collections():
    """Usable as a decorator: the wrapped call runs with THRESHOLDS, then the caller's are back."""
    old = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)

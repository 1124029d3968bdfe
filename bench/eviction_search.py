"""The eviction heuristic's address search (evict._Memory on free_ranges.FreedRanges) against the
list scan it replaced, in one process, on the compiles where it matters.

The heuristic places each tensor of a scratchpad at the address whose range was freed soonest.
The old search tried every end of every range ever freed and, for each, scanned the whole list of
freed ranges: quadratic in the ranges freed, 6.3 of 9.7 s (profiled) of the 32-layer LLaMA-like
decode stack on quad-a76-spm. `ListMemory` below is that old search, kept only here to be timed
against; both must give byte-identical schedules (checked, the script fails otherwise).

Graphs: the stream_compare decode stack (../shared/bench/stream_llama_onnx.py; hidden 2048, 32 heads,
FFN 5632, KV context 512) at --layers on bench/targets/quad-a76-spm.toml, and llama2-7b (4-bit,
prefill 128 + decode at context 128, 32 layers) on edge-soc. Reports CPU seconds of the whole
estimate and of the eviction runs in it (evict.sequence_schedule), best of --repeats, old / new.
Usage: python bench/eviction_search.py [--layers 32] [--repeats 2] [--json] [--builder PATH]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from pimc import api
from pimc.mapping import evict
from pimc.targets import load_target
from stream_compare import BUILDER, SPM_TARGET, build_graph  # bench/, the script's folder



class ListMemory(evict._Memory):
    """The search as it was: a list of every freed (offset, size, time), scanned per candidate."""

    def __init__(self, name: str, capacity: int):
        super().__init__(name, capacity)
        self.freed_list: list[tuple[int, int, float]] = []

    def free(self, offset: int, size: int, at: float) -> None:
        self.freed_list.append((offset, size, at))

    def hole(self, size: int, lowest: bool = False) -> int | None:
        live = sorted((b.offset, b.offset + b.size) for b in self.live.values())
        cands = sorted({0, *(hi for _, hi in live), *(o + n for o, n, _ in self.freed_list)})
        best = None
        for off in cands:
            if off + size > self.capacity or any(lo < off + size and off < hi for lo, hi in live):
                continue
            if lowest:
                return off
            free = self.free_from(off, size)
            if best is None or free < best[0]:
                best = (free, off)
        return None if best is None else best[1]

    def free_from(self, off: int, size: int) -> float:
        return max((t for o, n, t in self.freed_list if o < off + size and off < o + n), default=0.0)

    def packs(self, sizes: list[int], blocks=None) -> bool:
        taken = sorted((b.offset, b.offset + b.size) for b in (self.live.values() if blocks is None else blocks))
        for size in sizes:
            off = next((o for o in sorted({0, *(hi for _, hi in taken)})
                        if o + size <= self.capacity and not any(lo < o + size and o < hi for lo, hi in taken)), None)
            if off is None:
                return False
            bisect.insort(taken, (off, off + size))
        return True


@contextmanager
def memory_class(cls):
    """Run the eviction heuristic with `cls` as its memory, and time its runs (CPU seconds)."""
    spent = [0.0]
    original_cls, original_run = evict._Memory, evict.sequence_schedule

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return original_run(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - start

    evict._Memory = cls
    evict.sequence_schedule = timed
    patched = [m for m in sys.modules.values() if getattr(m, "sequence_schedule", None) is original_run]
    for m in patched:
        m.sequence_schedule = timed
    try:
        yield spent
    finally:
        evict._Memory = original_cls
        for m in patched:
            m.sequence_schedule = original_run
        evict.sequence_schedule = original_run


def measure(compile_once, cls, repeats: int) -> dict:
    best_total = best_evict = float("inf")
    digest = None
    for _ in range(repeats):
        with memory_class(cls) as spent:
            start = time.process_time()
            program = compile_once()
            total = time.process_time() - start
        best_total, best_evict = min(best_total, total), min(best_evict, spent[0])
        digest = hashlib.sha256(json.dumps(program.schedules, sort_keys=True).encode()).hexdigest()
    return {"cpu_s": best_total, "evict_cpu_s": best_evict, "schedules_sha256": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32, help="decoder layers of the quad-a76-spm stack")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--builder", type=Path, default=BUILDER, help="stream_llama_onnx.py (default: ../shared/bench/)")
    args = parser.parse_args()
    if not args.builder.is_file():
        sys.exit(f"eviction_search: {args.builder} not found (the shared graph builder; pass --builder)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp, f"llama_decode_{args.layers}.onnx")
        build_graph(args.builder, stack, args.layers)
        spm = load_target(SPM_TARGET)
        cases = {
            f"quad-a76-spm {args.layers}-layer decode stack": lambda: api.estimate_program(str(stack), spm),
            "edge-soc llama2-7b (32 layers)": lambda: api.estimate_program("llama2-7b", "edge-soc", seq_len=128,
                                                                          context=128, wbits=4),
        }
        api.estimate_program("tiny-llama", "cpu-a76", seq_len=8, context=32)  # warm-up: imports and caches
        for name, compile_once in cases.items():
            old = measure(compile_once, ListMemory, args.repeats)
            new = measure(compile_once, evict._Memory, args.repeats)
            if old["schedules_sha256"] != new["schedules_sha256"]:
                sys.exit(f"eviction_search: {name}: the two searches gave different schedules")
            rows.append({"graph": name, "old": old, "new": new, "cpu_ratio": old["cpu_s"] / new["cpu_s"],
                         "evict_ratio": old["evict_cpu_s"] / max(new["evict_cpu_s"], 1e-9)})
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return
    print(f"{'graph':<40} {'old cpu s':>9} {'new cpu s':>9} {'ratio':>6}   {'old evict s':>11} {'new evict s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['graph']:<40} {r['old']['cpu_s']:>9.2f} {r['new']['cpu_s']:>9.2f} {r['cpu_ratio']:>5.2f}x   "
              f"{r['old']['evict_cpu_s']:>11.2f} {r['new']['evict_cpu_s']:>11.2f} {r['evict_ratio']:>5.1f}x")
    print("schedules byte-identical under both searches (sha256 of every phase's schedule JSON)")


if __name__ == "__main__":
    main()

"""SmolLM2-135M-Instruct from its Q4_1 GGUF: import and compile time (cpu-a76), and decode speed.

Decode tokens/s are measured on this machine, wall clock: pimc's simulator (the functional model
running the compiled cpu-a76 program, KV cache, one token per step) and, when onnxruntime and an
ONNX export of the same model are available (`--onnx`, default: the first *.onnx with "smollm2" in
its path under ~/.cache/pimc, made by tests/fixtures/onnx/make_fixtures.py), onnxruntime on it.
The exports take (input_ids, attention_mask) and have no KV cache, so each onnxruntime decode step
re-runs the whole sequence; the ratio says how far the simulator is from a production runtime on
the same host. The simulated cpu-a76 tokens/s (the cost model's prediction) is printed next to them.

Usage: python bench/import_gguf.py [--tokens N] [--onnx FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "smollm2"))
from smollm2 import PROMPT, cache_dir, fetch_gguf  # noqa: E402

import pimc  # noqa: E402
from pimc.frontends import read_model  # noqa: E402


def onnx_decode_tokens_per_s(path: Path, ids: list[int], tokens: int) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    seq = list(ids)

    def step() -> int:
        feed = {"input_ids": np.asarray([seq], dtype=np.int64), "attention_mask": np.ones((1, len(seq)), dtype=np.int64)}
        logits = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
        return int(logits[0, -1].argmax())

    seq.append(step())  # prefill (not timed as decode)
    start = time.perf_counter()
    for _ in range(tokens - 1):
        seq.append(step())
    wall = time.perf_counter() - start
    return {"file": str(path), "decode_tokens_per_s": (tokens - 1) / wall, "tokens": seq[len(ids):]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gguf = fetch_gguf()

    start = time.perf_counter()
    model = read_model(str(gguf))
    import_s = time.perf_counter() - start
    ids = model.tokenizer.encode(PROMPT).ids
    start = time.perf_counter()
    program = pimc.compile(model, "cpu-a76", seq_len=len(ids), context=len(ids) + args.tokens)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for name in program.weights:  # dequantize every weight once (gguf's numpy code), outside the decode timing
        program.weights[name]
    dequantize_s = time.perf_counter() - start

    from pimc.execute import Executor

    executor = Executor(program.module, program.weights)
    start = time.perf_counter()
    executor.generate(ids, 1)
    prefill_wall = time.perf_counter() - start
    start = time.perf_counter()
    generation = executor.generate(ids, args.tokens)
    total_wall = time.perf_counter() - start
    decode_wall = max(total_wall - prefill_wall, 1e-9)
    report = program.run(ids, tokens=args.tokens).report
    out = {
        "model": str(gguf),
        "prompt": PROMPT,
        "text": program.decode(generation.tokens),
        "import_s": import_s,
        "compile_s": compile_s,
        "dequantize_s": dequantize_s,
        "simulator_decode_tokens_per_s": (args.tokens - 1) / decode_wall,
        "simulated_cpu_a76_tokens_per_s": report.tokens_per_s,
    }
    found = [p for p in sorted(cache_dir().parent.rglob("*.onnx")) if "smollm2" in str(p).lower()]
    onnx = args.onnx or (found[0] if found else None)
    if onnx is not None and onnx.is_file():
        try:
            ort_result = onnx_decode_tokens_per_s(onnx, ids, args.tokens)
        except ImportError:
            out["onnxruntime"] = "not installed"
        else:
            out["onnxruntime"] = ort_result
            out["simulator_vs_onnxruntime"] = out["simulator_decode_tokens_per_s"] / ort_result["decode_tokens_per_s"]
    else:
        out["onnxruntime"] = f"no ONNX export found (--onnx, or *.onnx with smollm2 in its path under {cache_dir().parent})"
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"SmolLM2-135M-Instruct Q4_1 GGUF ({gguf.stat().st_size / 1e6:.1f} MB) on cpu-a76")
    print(f"  import (read GGUF, check, map config):       {import_s:6.2f} s")
    print(f"  compile (build, passes, map, lower):         {compile_s:6.2f} s")
    print(f"  dequantize all weights (first run):           {dequantize_s:6.2f} s")
    print(f"  simulator decode:       {out['simulator_decode_tokens_per_s']:7.2f} tok/s (wall clock, this host)")
    print(f"  simulated cpu-a76:      {report.tokens_per_s:7.1f} tok/s (cost model)")
    if isinstance(out["onnxruntime"], dict):
        print(f"  onnxruntime decode:     {out['onnxruntime']['decode_tokens_per_s']:7.2f} tok/s (no KV cache: full sequence per step)")
        print(f"  simulator / onnxruntime: {out['simulator_vs_onnxruntime']:.3f}x")
    else:
        print(f"  onnxruntime: {out['onnxruntime']}")
    print(f"  text: {(PROMPT + out['text'])!r}")


if __name__ == "__main__":
    main()

"""ONNX import: read + import + compile time, and decode speed of pimc's simulator next to onnxruntime.

Models: the SmolLM2-135M-Instruct ONNX export (made by bench/export_smollm2_onnx.py into ~/.cache/pimc
when torch is installed; skipped with a message when absent) and the largest committed test fixture.
All times are wall clock on this machine, in this process:

- read: onnx.load + external data + checker; import: the three specializations (analysis at the
  context length, prefill, decode), folding and raising; compile: pimc.compile for cpu-a76 in full.
- decode tokens/s: pimc's simulator executing the compiled cpu-a76 program with its KV cache, one
  token per step, against onnxruntime (CPU) on the same file; the exports have no KV cache, so each
  onnxruntime step re-runs the whole sequence (the baseline a user of these files has). The ratio is
  simulator / onnxruntime. The cost model's predicted cpu-a76 tokens/s is printed beside them.

Usage: python bench/import_onnx.py [--tokens N] [--context C] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import pimc
from pimc.execute import Executor
from pimc.frontends import read_model

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "onnx"
CACHE = Path.home() / ".cache" / "pimc" / "onnx"
SMOLLM2_PROMPT = [504, 3575, 282, 4649, 314]  # "The capital of France is" (SmolLM2 tokenizer)


def onnxruntime_decode(path: Path, prompt: list[int], tokens: int) -> tuple[float, list[int]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    seq = list(prompt)

    def step() -> int:
        feed = {"input_ids": np.asarray([seq], np.int64), "attention_mask": np.ones((1, len(seq)), np.int64)}
        return int(session.run(None, {k: v for k, v in feed.items() if k in names})[0][0, -1].argmax())

    seq.append(step())  # prefill, not timed
    start = time.perf_counter()
    for _ in range(tokens - 1):
        seq.append(step())
    return (tokens - 1) / (time.perf_counter() - start), seq[len(prompt):]


def measure(path: Path, prompt: list[int], tokens: int, context: int) -> dict:
    start = time.perf_counter()
    source = read_model(str(path))
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    source.build(len(prompt), context)
    import_s = time.perf_counter() - start
    start = time.perf_counter()
    program = pimc.compile(str(path), target="cpu-a76", seq_len=len(prompt), context=context)
    compile_s = time.perf_counter() - start

    ex = Executor(program.module, program.weights)
    logits, next_ids = ex.call("prefill", np.asarray(prompt), np.arange(len(prompt)))
    generated = [int(next_ids[-1])]
    start = time.perf_counter()
    for p in range(len(prompt), len(prompt) + tokens - 1):
        _, next_ids = ex.call("decode", np.asarray(generated[-1:]), np.asarray([p]), p)
        generated.append(int(next_ids[-1]))
    sim_tps = (tokens - 1) / (time.perf_counter() - start)
    ort_tps, ort_tokens = onnxruntime_decode(path, prompt, tokens)
    return {
        "model": str(path),
        "read_s": read_s,
        "import_s": import_s,
        "compile_s": compile_s,
        "simulator_decode_tokens_per_s": sim_tps,
        "onnxruntime_decode_tokens_per_s": ort_tps,
        "simulator_over_onnxruntime": sim_tps / ort_tps,
        "cpu_a76_predicted_tokens_per_s": program.report().tokens_per_s,
        "same_tokens_as_onnxruntime": generated == ort_tokens,
        "tokens": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    smollm2 = sorted(CACHE.glob("smollm2*.onnx"))
    if smollm2:
        rows.append(measure(smollm2[0], SMOLLM2_PROMPT, args.tokens, args.context))
    else:
        print(f"SmolLM2 ONNX export not found under {CACHE} (make it with bench/export_smollm2_onnx.py); skipped")
    index = json.loads((FIXTURES / "index.json").read_text())["fixtures"]
    dynamic = [f for f in index if f.get("dynamic_axes", True) and (FIXTURES / f["file"]).is_file()]
    largest = max(dynamic, key=lambda f: sum(p.stat().st_size for p in FIXTURES.glob(f["name"] + ".onnx*")))
    ids = [int(i) for i in np.load(FIXTURES / largest["data"])[f"input_ids_{min(largest['cases'])}"][0]]
    rows.append(measure(FIXTURES / largest["file"], ids, args.tokens, args.context))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| model | read s | import s | compile s | sim tok/s | onnxruntime tok/s | sim/ort | a76 predicted tok/s | same tokens |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['model']).name} | {r['read_s']:.2f} | {r['import_s']:.2f} | {r['compile_s']:.2f} | "
              f"{r['simulator_decode_tokens_per_s']:.2f} | {r['onnxruntime_decode_tokens_per_s']:.1f} | "
              f"{r['simulator_over_onnxruntime']:.3f} | {r['cpu_a76_predicted_tokens_per_s']:.1f} | {r['same_tokens_as_onnxruntime']} |")


if __name__ == "__main__":
    main()

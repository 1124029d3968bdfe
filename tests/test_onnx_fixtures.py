"""The committed ONNX fixtures are valid models and onnxruntime reproduces their stored logits.

The fixtures (tests/fixtures/onnx, made by make_fixtures.py from tiny random transformers models)
are the reference the ONNX importer is tested against; this test needs only onnx + onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "onnx"
INDEX = json.loads((FIXTURE_DIR / "index.json").read_text())
ENTRIES = INDEX["fixtures"]
MAX_FILE_BYTES = 3 * 1024 * 1024


def _session(path: Path) -> ort.InferenceSession:
    # One thread, as make_fixtures.py ran it: reductions in the same order.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_fixture_is_valid_onnx(entry: dict) -> None:
    path = FIXTURE_DIR / entry["file"]
    assert path.stat().st_size < MAX_FILE_BYTES
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    opset = {o.domain: o.version for o in model.opset_import}
    assert opset.get("", opset.get("ai.onnx")) == entry["opset"]
    inits = {i.name for i in model.graph.initializer}
    assert [v.name for v in model.graph.input if v.name not in inits] == entry["inputs"]
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    assert ops == entry["ops"]
    external = [i for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    if entry["external_data"]:
        assert external and (FIXTURE_DIR / entry["external_data"]).is_file()
    else:
        assert not external


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_onnxruntime_reproduces_stored_logits(entry: dict) -> None:
    session = _session(FIXTURE_DIR / entry["file"])
    data = np.load(FIXTURE_DIR / entry["data"], allow_pickle=False)
    assert entry["cases"]
    for length in entry["cases"]:
        ids, mask = data[f"input_ids_{length}"], data[f"attention_mask_{length}"]
        assert ids.shape == (1, length) and ids.dtype == np.int64
        expected = data[f"logits_{length}"]
        assert expected.shape == (1, length, entry["vocab"]) and expected.dtype == np.float32
        (logits,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        assert np.abs(logits - expected).max() <= 1e-5, (entry["name"], length)


def test_fixtures_agree_with_torch_and_cover_the_issue() -> None:
    # make_fixtures.py measured onnxruntime against transformers' own torch logits.
    for entry in ENTRIES:
        assert entry["ort_vs_torch_max_abs_diff"] <= 1e-5, entry["name"]
    for arch in ("llama", "mistral", "qwen2", "phi3", "gemma", "gpt2", "bitnet", "bitnet_packed"):
        assert {e["exporter"] for e in ENTRIES if e["arch"] == arch} == {"dynamo", "torchscript"}, arch
    assert any("Attention" in e["ops"] and "RMSNormalization" in e["ops"] for e in ENTRIES)
    assert any(e["external_data"] for e in ENTRIES)
    assert any(not e["dynamic_axes"] for e in ENTRIES)
    assert all(e["uint8_initializers"] for e in ENTRIES if e["arch"] == "bitnet_packed")

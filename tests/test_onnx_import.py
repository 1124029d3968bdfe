"""ONNX import: every committed fixture (tests/fixtures/onnx, exported by torch from tiny random
Hugging Face models) compiles, and pimc's logits equal onnxruntime's — prefill within 1e-4, and decode
steps through pimc's own KV cache equal the graph run on the full sequence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

import pimc
from pimc.dialects import llm
from pimc.errors import ModelError, PimcError
from pimc.execute import Executor
from pimc.frontends import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
INDEX = json.loads((FIXTURES / "index.json").read_text()) if (FIXTURES / "index.json").is_file() else {"fixtures": []}
PRESENT = [f for f in INDEX["fixtures"] if (FIXTURES / f["file"]).is_file()]
CASES = [f for f in PRESENT if f.get("dynamic_axes", True)]
FIXED = [f for f in PRESENT if not f.get("dynamic_axes", True)]
TOL = 1e-4


def fixture_ids(f: dict) -> str:
    return f["name"]


def data(f: dict) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / f["data"]))


def context_for(f: dict) -> int:
    return max(16, max(f["cases"]))


@pytest.fixture(scope="module", params=CASES, ids=fixture_ids)
def compiled(request):
    """One compile per fixture for its longest case (prefill of every token, then decode checks)."""
    f = request.param
    seq = min(f["cases"])
    program = pimc.compile(str(FIXTURES / f["file"]), target="cpu-a76", seq_len=seq, context=context_for(f))
    return f, seq, program


def test_prefill_logits_equal_onnxruntime(compiled):
    f, seq, program = compiled
    z = data(f)
    ids, want = z[f"input_ids_{seq}"][0], z[f"logits_{seq}"][0]
    result = program.run(list(ids), tokens=1)
    diff = float(np.abs(result.logits - want).max())
    assert diff <= TOL, f"{f['name']}: prefill max abs diff {diff:.3g}"
    assert float(np.abs(want).max()) > 0.1


def test_decode_steps_equal_full_sequence(compiled):
    """Prefill the first `seq` tokens of the longest case, then feed the rest one by one through the
    compiled decode function: each step's logits equal the full-sequence onnxruntime logits."""
    f, seq, program = compiled
    z = data(f)
    longest = max(f["cases"])
    ids, want = z[f"input_ids_{longest}"][0], z[f"logits_{longest}"][0]
    if longest <= seq:
        pytest.skip("one case only")
    ex = Executor(program.module, program.weights)
    rows = [ex.call("prefill", ids[:seq], np.arange(seq))[0]]
    for p in range(seq, longest):
        rows.append(ex.call("decode", ids[p : p + 1], np.array([p]), p)[0])
    got = np.concatenate(rows)
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"{f['name']}: prefill+decode max abs diff {diff:.3g}"


def test_imports_raise_to_model_ops(compiled):
    """The graphs become the ops llm_builder emits: one attention per layer and phase, every projection
    a linear, and no generic softmax/matmul/elementwise op left over."""
    f, _, program = compiled
    ops = Counter(op.properties["kernel"].data for op in program.module.walk() if "kernel" in op.properties)
    assert ops["llm.attention"] == 2 * f["layers"]
    assert ops["llm.linear"] >= 2 * (4 * f["layers"] + 1)
    generic = {k: v for k, v in ops.items() if k in ("llm.unary", "llm.binary", "llm.select", "llm.softmax", "llm.matmul", "llm.reduce", "llm.cast")}
    if f["name"].startswith("bitnet_packed"):  # BitNet's per-token int8 activation quantization stays elementwise
        assert set(generic) <= {"llm.unary", "llm.binary", "llm.reduce", "llm.cast"}
    else:
        assert not generic, f"{f['name']}: left generic: {generic}"


@pytest.mark.parametrize("f", FIXED, ids=fixture_ids)
def test_fixed_length_graph(f):
    """A graph exported with a fixed sequence length imports for that length (logits equal onnxruntime),
    refuses any other --seq-len by name, and cannot give a one-token decode step: a clear error."""
    from pimc.frontends.onnx.assemble import Assembler
    from xdsl.dialects.builtin import ModuleOp

    (seq,) = f["cases"]
    source = read_model(str(FIXTURES / f["file"]))
    with pytest.raises(ModelError, match=f"fixed to sequence length {seq}; compile with --seq-len {seq}"):
        source.build(seq - 1, 16)
    with pytest.raises(ModelError, match="dynamic sequence axis"):
        source.build(seq, 16)
    assembler = Assembler(source.model)
    fn, _ = assembler.function("prefill", seq, 16, {})
    z = data(f)
    logits, _ = Executor(ModuleOp([fn]), assembler.table.arrays).interpreter.call_op("prefill", (z[f"input_ids_{seq}"][0], np.arange(seq)))
    assert float(np.abs(logits - z[f"logits_{seq}"][0]).max()) <= TOL


# ---------------------------------------------------------------------- CLI


def test_cli_compile_and_run_matches_onnxruntime(tmp_path):
    f = CASES[0]
    seq = min(f["cases"])
    z = data(f)
    ids = ",".join(str(int(i)) for i in z[f"input_ids_{seq}"][0])
    out, logits = tmp_path / "bundle", tmp_path / "logits.npy"
    pimc_cli = [sys.executable, "-m", "pimc.cli"]
    subprocess.run([*pimc_cli, "compile", str(FIXTURES / f["file"]), "--seq-len", str(seq), "--context", "16", "-o", str(out)], check=True, capture_output=True)
    subprocess.run([*pimc_cli, "run", str(out), "--input-ids", ids, "--tokens", "2", "--save-logits", str(logits)], check=True, capture_output=True)
    got = np.load(logits)
    assert got.shape == (seq + 1, f["vocab"])
    assert float(np.abs(got[:seq] - z[f"logits_{seq}"][0]).max()) <= TOL


# ---------------------------------------------------------------------- errors


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pimc.cli", *args], capture_output=True, text=True)


def test_truncated_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes((FIXTURES / CASES[0]["file"]).read_bytes()[:1000])
    r = run_cli("compile", str(bad), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.startswith("pimc: error: ") and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        read_model(str(tmp_path / "absent.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not an onnx model at all" * 10)
    with pytest.raises(ModelError, match="junk.onnx"):
        read_model(str(junk))


def tiny_graph(extra_nodes=(), inputs=None, opset=18) -> onnx.ModelProto:
    """input_ids [1, S] → embedding → (extra nodes on 'h') → logits: enough to test reading and errors."""
    rng = np.random.default_rng(0)
    table = oh.make_tensor("table", TensorProto.FLOAT, [8, 4], rng.normal(size=32).astype(np.float32).tobytes(), raw=True)
    nodes = [oh.make_node("Gather", ["table", "input_ids"], ["h"], name="embed"), *extra_nodes,
             oh.make_node("MatMul", ["h", "head"], ["logits"], name="head")]
    head = oh.make_tensor("head", TensorProto.FLOAT, [4, 8], rng.normal(size=32).astype(np.float32).tobytes(), raw=True)
    graph = oh.make_graph(
        nodes, "tiny",
        inputs or [oh.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence"])],
        [oh.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "sequence", 8])],
        [table, head],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def test_unsupported_op_names_node_op_and_file(tmp_path):
    model = tiny_graph([oh.make_node("Hardmax", ["h"], ["h2"], name="odd_node"), oh.make_node("Identity", ["h2"], ["h3"])])
    model.graph.node[-1].input[0] = "h3"
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError) as e:
        read_model(str(path)).build(4, 8)
    assert "odd_node" in str(e.value) and "Hardmax" in str(e.value) and "odd.onnx" in str(e.value)


def test_graph_without_attention_cannot_decode(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(tiny_graph(), path)
    with pytest.raises(ModelError, match="no causal attention"):
        read_model(str(path)).build(4, 8)


def test_missing_external_data_file(tmp_path):
    model = tiny_graph()
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()
    r = run_cli("compile", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "ext.data" in r.stderr and "missing" in r.stderr


def test_unbindable_input_is_named(tmp_path):
    inputs = [oh.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence"]),
              oh.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3])]
    path = tmp_path / "vision.onnx"
    onnx.save(tiny_graph(inputs=inputs), path)
    with pytest.raises(ModelError, match="pixel_values"):
        read_model(str(path)).build(4, 8)


def test_weights_are_the_initializers_by_name(compiled):
    f, _, program = compiled
    model = onnx.load(str(FIXTURES / f["file"]), load_external_data=False)
    names = {t.name for t in model.graph.initializer}
    embed = [n for n in program.weights if "embed_tokens" in n or n in names]
    assert embed, "weights keep their ONNX initializer names"
    assert all(a.dtype in (np.float32, np.int64, np.bool_) for a in program.weights.values())


def test_random_weights_are_refused():
    source = read_model(str(FIXTURES / CASES[0]["file"]))
    module = source.build(4, 8)
    with pytest.raises(PimcError, match="carries its own weights"):
        source.load_weights(module, "random")
    assert sum(isinstance(op, llm.AttentionOp) for op in module.walk()) == 2 * CASES[0]["layers"]

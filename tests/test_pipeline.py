"""The whole pipeline through the Python API: compile → save → load → run equals the `llm` reference,
every schedule passes the checker (and corrupted ones do not), report values, bundles, determinism,
estimates, other families and safetensors checkpoints."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

import pimc
from pimc.dialects import cpu
from pimc.errors import BundleError, ModelError, PimcError, ScheduleError
from pimc.execute import Executor
from pimc.frontends import build_module, model_weights, read_model
from pimc.mapping.checker import check_schedule, schedule_violations
from pimc.mapping.from_ir import map_module
from pimc.mapping.schedule import Schedule
from pimc.passes import QuantizePass
from pimc.targets import load_target
from pimc.timeline import function

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]
N_TOKENS = 17
SEQ, CONTEXT = 8, 32
BUNDLE_FILES = ("program.mlir", "llm.mlir", "schedule.json", "manifest.json", "weights.safetensors", "target.toml")


def reference(spec: str, prompt=PROMPT, n_tokens=N_TOKENS, wbits: float = 32, seq=SEQ, context=CONTEXT):
    """The `llm` reference, built independently of pimc.compile."""
    source = read_model(spec)
    module = build_module(source.config, seq, context)
    if wbits != 32:
        QuantizePass(bits=wbits, group=32).apply(pimc.ir.make_context(), module)
    weights = model_weights(source, module)
    return Executor(module, weights).generate(prompt, n_tokens)


def kernels(program: pimc.Program, phase: str) -> list[cpu.KernelOp]:
    return [op for op in function(program.module, phase).body.ops if isinstance(op, cpu.KernelOp)]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("wbits", [32, 4])
def test_compile_save_load_run_equals_reference(tmp_path, wbits):
    program = pimc.compile("tiny-llama", "cpu-a76", seq_len=SEQ, context=CONTEXT, wbits=wbits)
    program.save(tmp_path / "bundle")
    loaded = pimc.load(tmp_path / "bundle")
    assert loaded.seq_len == SEQ and loaded.context == CONTEXT
    assert loaded.manifest["options"]["wbits"] == wbits
    result = loaded.run(PROMPT, N_TOKENS)
    ref = reference("tiny-llama", wbits=wbits)
    assert len(result.tokens) == N_TOKENS
    assert result.tokens == ref.tokens
    assert result.logits.shape == (SEQ + N_TOKENS - 1, 512)
    assert result.logits.dtype == np.float32
    assert np.max(np.abs(result.logits - ref.logits)) <= 1e-5
    # the in-memory program gives the same answer as the one read back
    direct = program.run(PROMPT, N_TOKENS)
    assert direct.tokens == result.tokens
    np.testing.assert_array_equal(direct.logits, result.logits)


def test_quantization_changes_logits():
    """wbits=4 really quantizes (else the wbits=4 comparison above would prove nothing)."""
    full, q4 = reference("tiny-llama", n_tokens=2), reference("tiny-llama", n_tokens=2, wbits=4)
    diff = np.max(np.abs(full.logits - q4.logits))
    assert 1e-3 < diff < 10.0


# ----------------------------------------------------------------------------- checker


@pytest.fixture(scope="module")
def mapped():
    source = read_model("tiny-llama")
    module = build_module(source.config, SEQ, CONTEXT)
    return {f.name: f for f in map_module(module, load_target("cpu-a76"))}


def test_every_schedule_passes_the_checker(mapped):
    assert set(mapped) == {"prefill", "decode"}
    for f in mapped.values():
        assert schedule_violations(f.problem, f.schedule) == []
        check_schedule(f.problem, f.schedule)
        assert len(f.schedule.slots) == len(f.problem.ops) > 0


def _replace_slot(schedule: Schedule, op: str, start: float) -> Schedule:
    slot = schedule.slots[op]
    slots = dict(schedule.slots)
    slots[op] = dataclasses.replace(slot, start_s=start, end_s=start + (slot.end_s - slot.start_s))
    return dataclasses.replace(schedule, slots=slots)


def test_checker_rejects_op_before_its_producer(mapped):
    f = mapped["prefill"]
    op = f.problem.ops[5]
    producer = next(f.problem.producer[t] for t in op.inputs if t in f.problem.producer)
    p = f.schedule.slots[producer]
    bad = _replace_slot(f.schedule, op.name, p.start_s)
    assert p.end_s > p.start_s
    assert any(f"op {op.name!r} starts at" in v and f"before producer {producer!r}" in v for v in schedule_violations(f.problem, bad))
    with pytest.raises(ScheduleError, match="invalid schedule"):
        check_schedule(f.problem, bad)


def test_checker_rejects_overlap_on_a_device(mapped):
    f = mapped["decode"]
    order = f.schedule.ops_in_order()
    # a pair of consecutive ops where the second does not read the first's output: pull it into the first
    for a, b in zip(order, order[1:]):
        producers = {f.problem.producer.get(t) for t in f.problem.op_by_name[b.op].inputs}
        if a.op not in producers and a.end_s > a.start_s:
            break
    else:
        pytest.fail("no independent consecutive pair")
    bad = _replace_slot(f.schedule, b.op, (a.start_s + a.end_s) / 2)
    violations = schedule_violations(f.problem, bad)
    assert any(f"ops {a.op!r} and {b.op!r} overlap on device 'cpu'" in v for v in violations)
    with pytest.raises(ScheduleError):
        check_schedule(f.problem, bad)


def test_checker_rejects_memory_over_capacity(mapped):
    f = mapped["prefill"]
    small = dataclasses.replace(f.problem, capacity_bytes={"dram": 100_000})
    with pytest.raises(ScheduleError, match=r"memory 'dram' holds \d+ bytes at t=.* capacity 100000 bytes"):
        check_schedule(small, f.schedule)


# ----------------------------------------------------------------------------- reports

REPORT_KEYS = {"model", "target", "compile_s", "prefill", "decode", "ttft_s", "tokens_per_s", "joules_per_token", "devices", "schedule"}


def test_static_report_values(tiny_program):
    data = tiny_program.report().data
    assert REPORT_KEYS <= set(data)
    assert data["schema"] == "pimc.report/1"
    assert (data["model"], data["target"]) == ("tiny-llama", "cpu-a76")
    assert data["compile_s"] > 0
    assert set(data["prefill"]) >= {"tokens", "latency_s", "energy_j", "offchip_bytes"}
    assert set(data["decode"]) >= {"context", "latency_s", "energy_j", "offchip_bytes"}
    assert data["prefill"]["tokens"] == SEQ and data["decode"]["context"] == CONTEXT
    assert set(data["schedule"]) >= {"solver", "status", "objective", "bound", "gap"}
    assert data["schedule"]["solver"] == "heft+belady"  # meets the lower bound on one device: optimal
    assert data["schedule"]["status"] == "OPTIMAL" and data["schedule"]["gap"] == 0.0

    pre, dec = kernels(tiny_program, "prefill"), kernels(tiny_program, "decode")
    prefill_latency = data["prefill"]["latency_s"]
    assert prefill_latency > 0
    assert prefill_latency == pytest.approx(tiny_program.schedules["prefill"]["makespan_s"], rel=1e-12)
    # one device: kernels run back to back, so the latency is their sum
    assert prefill_latency == pytest.approx(sum(k.latency_s.value.data for k in pre), rel=1e-9)
    assert data["decode"]["latency_s"] == pytest.approx(tiny_program.schedules["decode"]["makespan_s"], rel=1e-12)
    assert data["decode"]["energy_j"] == pytest.approx(sum(k.energy_j.value.data for k in dec), rel=1e-12)
    assert data["decode"]["offchip_bytes"] == pytest.approx(sum(k.offchip_bytes.value.data for k in dec), rel=1e-12)
    assert data["prefill"]["energy_j"] == pytest.approx(sum(k.energy_j.value.data for k in pre), rel=1e-12)
    assert data["ttft_s"] == prefill_latency
    assert data["tokens_per_s"] == pytest.approx(1.0 / data["decode"]["latency_s"], rel=1e-12)
    assert data["joules_per_token"] == data["decode"]["energy_j"]

    assert set(data["devices"]) == {"cpu"}
    usage = data["devices"]["cpu"]
    assert set(usage) >= {"kind", "busy_s", "energy_j", "ops"}
    assert usage["kind"] == "cpu"
    assert usage["ops"] == len(pre) + len(dec)
    assert usage["busy_s"] == pytest.approx(prefill_latency + data["decode"]["latency_s"], rel=1e-9)
    json.loads(tiny_program.report().to_json())  # serialisable
    assert "tiny-llama" in tiny_program.report().to_markdown()


def test_run_report_values(tiny_program):
    static = tiny_program.report().data
    data = tiny_program.run(PROMPT, N_TOKENS).report.data
    run = data["run"]
    assert run["prompt_tokens"] == SEQ and run["generated_tokens"] == N_TOKENS
    expected = static["prefill"]["latency_s"] + (N_TOKENS - 1) * static["decode"]["latency_s"]
    assert run["latency_s"] == pytest.approx(expected, rel=1e-9)
    expected_energy = static["prefill"]["energy_j"] + (N_TOKENS - 1) * static["decode"]["energy_j"]
    assert run["energy_j"] == pytest.approx(expected_energy, rel=1e-9)
    n_pre, n_dec = len(kernels(tiny_program, "prefill")), len(kernels(tiny_program, "decode"))
    assert data["devices"]["cpu"]["ops"] == n_pre + (N_TOKENS - 1) * n_dec
    assert data["devices"]["cpu"]["busy_s"] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- bundles


def test_modified_bundle_is_rejected(tiny_program, tmp_path):
    path = tiny_program.save(tmp_path / "b")
    program_file = path / "program.mlir"
    program_file.write_text(program_file.read_text() + "\n")
    with pytest.raises(BundleError, match="sha256") as info:
        pimc.load(path)
    assert "program.mlir" in str(info.value)


def test_load_of_a_non_bundle_is_rejected(tmp_path):
    with pytest.raises(BundleError, match="not a pimc bundle"):
        pimc.load(tmp_path)


def test_save_refuses_to_overwrite_a_foreign_directory(tiny_program, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(PimcError, match="not a pimc bundle"):
        tiny_program.save(target)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging directory left


def test_save_over_an_existing_bundle_replaces_it(tiny_program, tmp_path):
    path = tiny_program.save(tmp_path / "b")
    tiny_program.save(path)
    assert pimc.load(path).manifest["model"] == "tiny-llama"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_failed_save_leaves_nothing_behind(tiny_program, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pimc.bundle.save_file", broken)
    parent = tmp_path / "out"
    parent.mkdir()
    with pytest.raises(OSError, match="disk full"):
        tiny_program.save(parent / "b")
    assert list(parent.iterdir()) == []


def test_compiles_are_deterministic(tmp_path):
    paths = [pimc.compile("tiny-llama", "cpu-a76", seq_len=SEQ, context=CONTEXT).save(tmp_path / f"b{i}") for i in range(2)]
    for name in BUNDLE_FILES:
        a, b = ((p / name).read_bytes() for p in paths)
        assert a == b, name
        assert len(a) > 0


# ----------------------------------------------------------------------------- estimates


def test_estimate_opt_125m_on_i7():
    report = pimc.estimate("opt-125m", "cpu-i7-9700k", seq_len=16, context=32)
    assert report.data["model"] == "opt-125m" and report.data["target"] == "cpu-i7-9700k"
    assert report.prefill.latency_s > 0 and report.decode.latency_s > 0
    assert report.prefill.energy_j > 0 and report.decode.energy_j > 0
    # decode reads every weight once: at least the fp32 parameter bytes off-chip
    params = read_model("opt-125m").config.parameter_count
    assert report.decode.offchip_bytes >= 4 * (params - 2048 * 768) * 0.9
    assert report.data["prefill"]["tokens"] == 16 and report.data["decode"]["context"] == 32


@pytest.mark.parametrize(("model", "wbits"), [("gpt2-medium", 32), ("llama2-13b", 4)])
def test_estimate_larger_models(model, wbits):
    report = pimc.estimate(model, "cpu-a76", seq_len=16, context=32, wbits=wbits)
    assert report.prefill.latency_s > 0 and report.decode.latency_s > 0
    assert report.tokens_per_s == pytest.approx(1 / report.decode.latency_s)


def test_estimate_over_capacity_is_an_error():
    with pytest.raises(ScheduleError, match="memory 'dram'.*capacity"):
        pimc.estimate("llama2-7b", "cpu-a76", seq_len=16, context=32)


# ----------------------------------------------------------------------------- other families

SMALL_CONFIGS = {
    "opt": {
        "model_type": "opt", "vocab_size": 96, "hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 64, "activation_function": "relu",
        "do_layer_norm_before": True, "word_embed_proj_dim": 32, "tie_word_embeddings": True,
    },
    "gpt2": {
        "model_type": "gpt2", "vocab_size": 80, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64,
        "activation_function": "gelu_new",
    },
}


@pytest.mark.parametrize("family", sorted(SMALL_CONFIGS))
def test_small_random_models_equal_reference(tmp_path, family):
    folder = tmp_path / f"tiny-{family}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SMALL_CONFIGS[family]))
    program = pimc.compile(str(folder), "cpu-a76", seq_len=SEQ, context=CONTEXT)
    assert program.manifest["options"]["weights"] == "random"
    assert program.manifest["model"] == f"tiny-{family}"
    result = program.run(PROMPT, 5)
    ref = reference(str(folder), n_tokens=5)
    vocab = SMALL_CONFIGS[family]["vocab_size"]
    assert result.logits.shape == (SEQ + 4, vocab)
    assert result.tokens == ref.tokens
    assert np.max(np.abs(result.logits - ref.logits)) <= 1e-5


# ----------------------------------------------------------------------------- checkpoints

TINY_LLAMA_CONFIG = {
    "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
}


def hf_llama_tensors(seed: int = 1) -> dict[str, np.ndarray]:
    """HF LLaMA checkpoint names and shapes for TINY_LLAMA_CONFIG."""
    d, f, v, kv = 32, 48, 64, 2 * 8
    shapes = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,), "lm_head.weight": (v, d)}
    for i in range(2):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (d, d), p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d), p + "self_attn.o_proj.weight": (d, d),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d), p + "mlp.down_proj.weight": (d, f),
        }
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * (0.3 if len(s) == 2 else 0.05) + (1.0 if len(s) == 1 else 0.0)).astype(np.float32) for k, s in shapes.items()}


def write_checkpoint(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    save_file(tensors, str(folder / "model.safetensors"))


def test_checkpoint_weights_are_used(tmp_path):
    tensors = hf_llama_tensors()
    write_checkpoint(tmp_path / "ckpt", tensors)
    program = pimc.compile(str(tmp_path / "ckpt"), "cpu-a76", seq_len=SEQ, context=CONTEXT, weights="auto")
    assert program.manifest["options"]["weights"] == "checkpoint"
    assert set(program.weights) == set(tensors)
    for name, array in tensors.items():
        np.testing.assert_array_equal(program.weights[name], array, err_msg=name)
    # the checkpoint, not random weights, drives the run; and it still equals the reference
    result = program.run(PROMPT, 3)
    ref = reference(str(tmp_path / "ckpt"), n_tokens=3)
    assert result.tokens == ref.tokens
    assert np.max(np.abs(result.logits - ref.logits)) <= 1e-5
    random = pimc.compile(str(tmp_path / "ckpt"), "cpu-a76", seq_len=SEQ, context=CONTEXT, weights="random")
    assert random.manifest["options"]["weights"] == "random"
    assert not np.array_equal(random.run(PROMPT, 1).logits, result.logits[:SEQ])


@pytest.mark.parametrize("missing", ["model.layers.1.mlp.up_proj.weight", "lm_head.weight"])
def test_checkpoint_missing_a_tensor_names_it(tmp_path, missing):
    """Untied config: a missing lm_head is an error, not silently the embedding table."""
    tensors = hf_llama_tensors()
    del tensors[missing]
    write_checkpoint(tmp_path / "ckpt", tensors)
    with pytest.raises(ModelError, match=f"checkpoint has no tensor for weight '{re.escape(missing)}'"):
        pimc.compile(str(tmp_path / "ckpt"), "cpu-a76", seq_len=SEQ, context=CONTEXT)

"""The FPGA path end to end: TPHS and GEMM dataflows, overflow fallback, packed weights, CLI, IR round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pimc
from pimc.api import estimate_program
from pimc.dialects import fpga
from pimc.errors import PimcError
from pimc.execute import Executor
from pimc.frontends import build_module, model_weights, read_model
from pimc.ir import parse_module, print_module, run_passes
from pimc.passes.pack_weights import pack_weights
from pimc.passes.tphs import select_dataflow
from pimc.pipeline import graph_passes, map_and_lower, report_sections
from pimc.targets import load_target

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def runs():
    progs = {df: pimc.compile("tiny-llama", "zcu102-meadow", wbits=8, abits=8, dataflow=df) for df in ("gemm", "tphs")}
    return progs, {df: p.run(PROMPT, tokens=4) for df, p in progs.items()}


def op_names(module) -> list[str]:
    return [op.name for op in module.walk()]


def test_tphs_and_gemm_identical_and_equal_to_reference(runs):
    progs, results = runs
    # TPHS from the Q projection on (q linear, reshape, rope and attention in one pipeline op)
    assert "fpga.tphs_q" in op_names(progs["tphs"].module) and "fpga.scores" not in op_names(progs["tphs"].module)
    assert op_names(progs["tphs"].module).count("fpga.gemm") == op_names(progs["gemm"].module).count("fpga.gemm") - 4
    assert {"fpga.scores", "fpga.softmax", "fpga.pv"} <= set(op_names(progs["gemm"].module))
    assert not {"fpga.tphs", "fpga.tphs_q"} & set(op_names(progs["gemm"].module))
    assert np.array_equal(results["gemm"].logits, results["tphs"].logits)  # bit-identical
    assert results["gemm"].tokens == results["tphs"].tokens
    reference = Executor(parse_module(progs["tphs"].llm_ir), progs["tphs"].weights).generate(PROMPT, 4)
    assert reference.tokens == results["tphs"].tokens
    np.testing.assert_allclose(results["tphs"].logits, reference.logits, rtol=1e-4, atol=1e-5)


def test_tphs_moves_fewer_bytes_and_auto_is_no_slower(runs):
    _, results = runs
    gemm, tphs = results["gemm"].report, results["tphs"].report
    # 2 layers; H x S x T = 4 x 8 x 8 scores written and read as fp32, probabilities written and read as
    # int8 by the GEMM form;
    # with Q fused into the pipeline, Q [8, 128] (1 B codes) is neither stored nor loaded, and rope of Q
    # no longer moves its f32 input and output plus 8 int64 positions as A8 codes (/ 4) through the vector unit
    q_saved = 2 * 8 * 128 + (2 * 8 * 128 * 4 + 8 * 8) / 4
    assert gemm.prefill.offchip_bytes - tphs.prefill.offchip_bytes == 2 * ((4 + 4 + 1 + 1) * (4 * 8 * 8) + q_saved)
    auto = pimc.estimate("tiny-llama", "zcu102-meadow", seq_len=8, wbits=8, abits=8)
    assert auto.prefill.latency_s <= min(gemm.prefill.latency_s, tphs.prefill.latency_s) * (1 + 1e-12)


def test_onchip_overflow_falls_back_to_gemm_with_a_note():
    # 2000 B of buffers: GEMM tiles fit (one row of each), TPHS intermediates (3200 B prefill) do not.
    prog = pimc.compile("tiny-llama", "zcu102-meadow", wbits=8, abits=8, dataflow="tphs",
                        overrides=["fpga.bram_bytes=2000"])
    names = op_names(prog.module)
    assert not {"fpga.tphs", "fpga.tphs_q"} & set(names) and "fpga.scores" in names
    assert "TPHS intermediates need 3200 B on chip, more than the 2000 B of 'fpga': GEMM form" in prog.llm_ir
    ref = pimc.compile("tiny-llama", "zcu102-meadow", wbits=8, abits=8, dataflow="gemm").run(PROMPT, tokens=2)
    assert np.array_equal(prog.run(PROMPT, tokens=2).logits, ref.logits)


def test_q_projection_stays_out_of_tphs_when_its_rows_do_not_fit():
    # 10,000 B: TPHS alone fits (3,200 B prefill, 4,608 B decode); with Q fused it needs the 8 x 128 input
    # rows and two 32 x 128 Wq slices more (12,416 / 12,928 B): plain `fpga.tphs` after a GEMM Q projection.
    prog = pimc.compile("tiny-llama", "zcu102-meadow", wbits=8, abits=8, dataflow="tphs",
                        overrides=["fpga.bram_bytes=10000"])
    names = op_names(prog.module)
    assert "fpga.tphs" in names and "fpga.tphs_q" not in names
    assert "Q projection not fused into TPHS: needs 12416 B on chip, more than the 10000 B" in prog.llm_ir
    ref = pimc.compile("tiny-llama", "zcu102-meadow", wbits=8, abits=8, dataflow="gemm").run(PROMPT, tokens=2)
    assert np.array_equal(prog.run(PROMPT, tokens=2).logits, ref.logits)


def dma_of(op) -> tuple[list, list]:
    """The `fpga.dma_in` ops feeding `op` and the `fpga.dma_out` ops draining its result."""
    ins = list(dict.fromkeys(v.owner for v in op.operands if isinstance(v.owner, fpga.DmaInOp)))
    outs = [u.operation for r in op.results for u in r.uses if isinstance(u.operation, fpga.DmaOutOp)]
    return ins, outs


def tphs_q_cycles(op: fpga.TphsQOp, device) -> int:
    """The pipeline's cycles from its per-head stage cycles: heads one after another through the slowest
    stage (Q and QKᵀ share the parallel PEs), the other stages filling and draining once, plus the
    softmax unit's latency."""
    stages = (op.q_cycles.value.data + op.qk_cycles.value.data, op.rope_cycles.value.data,
              op.softmax_cycles.value.data, op.sv_cycles.value.data)
    return op.heads.value.data * max(stages) + sum(stages) - max(stages) + device.softmax_latency_cycles


@pytest.mark.parametrize("dataflow", ["gemm", "tphs"])
def test_dma_ops_carry_every_offchip_byte_and_set_the_latency(runs, dataflow):
    progs, _ = runs
    device = load_target("zcu102-meadow").device("fpga")
    f, bandwidth = device.clock_hz, device.offchip_gbps * 1e9 / 8
    checked = {"fpga.gemm": 0, "fpga.tphs_q": 0}
    for op in progs[dataflow].module.walk():
        if not isinstance(op, fpga.ScheduledOp):
            continue
        ins, outs = dma_of(op)
        moved = sum(d.bytes.value.data for d in ins + outs)
        assert moved == pytest.approx(op.offchip_bytes.value.data, rel=1e-12, abs=1e-9), op.name
        assert all(d.seconds.value.data == pytest.approx(d.bytes.value.data / bandwidth, rel=1e-12) for d in ins + outs)
        assert all(d.double_buffered is not None for d in ins + outs)
        if isinstance(op, (fpga.GemmOp, fpga.TphsQOp)) and "fpga.unpack" not in op_names(progs[dataflow].module):
            cycles = op.cycles.value.data if isinstance(op, fpga.GemmOp) else tphs_q_cycles(op, device)
            # double-buffered: the transfers hide under the PEs or the PEs under them
            body = max(cycles / f, sum(d.seconds.value.data for d in ins + outs))
            fill = device.offchip_latency_ns * 1e-9 if moved else 0.0
            assert op.latency_s.value.data == pytest.approx(device.op_overhead_cycles / f + fill + body, rel=1e-12)
            checked[op.name] += 1
    assert checked["fpga.gemm"] > 0 and (checked["fpga.tphs_q"] > 0) == (dataflow == "tphs")
    names = op_names(progs[dataflow].module)
    if dataflow == "gemm":  # scores and probabilities go out and come back between the three passes
        whats = [op.what.data for op in progs[dataflow].module.walk() if isinstance(op, fpga.DmaInOp | fpga.DmaOutOp)]
        assert whats.count("scores") == 2 * 4 and whats.count("probs") == 2 * 4
    else:
        assert "fpga.dma_out" in names


@pytest.mark.parametrize(("gbps", "latency_us"), [
    (12, 1 + 0.2 + 20480 / 1.5e3),  # the preset's bandwidth: 13.65 us of DMA hide the 6.2 us pipeline
    (51, 1 + 0.2 + 6.2),  # 20,480 B / 6.375 GB/s = 3.21 us of DMA under the 620 cycles
])
def test_tphs_q_latency_equals_the_hand_computed_pipeline(gbps, latency_us):
    # tiny-llama prefill: S = T = 8 tokens, H = 4 heads of D = 32 over 2 KV heads, Q from K = 128 inputs.
    # Per head, with the preset's 84 parallel PEs x 32 lanes, 12 broadcast PEs x 64 lanes, 32 softmax
    # and 32 vector lanes (cycles):
    #   Q        ceil(8/84) x 32 outputs x ceil(128/32)  = 128   (on the parallel PEs, before QKᵀ)
    #   rope     ceil(6 ops x 8 x 32 / 32)               =  48
    #   QKᵀ      ceil(8/84) x 8 keys x ceil(32/32)       =   8
    #   softmax  2 passes x ceil(8 x 8 / 32)             =   4
    #   SV       ceil(8/12) x 8 keys x ceil(32/64)       =   8
    # 4 heads x (128 + 8) + (48 + 4 + 8) + 16 (softmax pipeline) = 620 cycles = 6.2 us at 100 MHz.
    # DMA: Wq 128 x 128 int8 codes + 512 fp16 group-of-32 scales = 17,408 B, x 8 x 128 = 1,024 B,
    # K and V 8 x 2 x 32 = 512 B each, output 8 x 4 x 32 = 1,024 B: 20,480 B.
    # Latency = 100 cycles to issue (1 us) + 200 ns DMA latency + max(pipeline, DMA).
    program = estimate_program("tiny-llama", "zcu102-meadow", seq_len=8, wbits=8, abits=8, dataflow="tphs",
                               overrides=[f"fpga.offchip_gbps={gbps}"])
    prefill = next(op for op in program.module.ops if getattr(op, "sym_name", None) and op.sym_name.data == "prefill")
    fused = [op for op in prefill.walk() if isinstance(op, fpga.TphsQOp)]
    assert len(fused) == 2  # one per layer
    for op in fused:
        assert op.offchip_bytes.value.data == 20480
        assert op.latency_s.value.data == pytest.approx(latency_us * 1e-6, rel=1e-12)


def test_dma_buffer_over_capacity_fails_verification():
    from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr, TensorType, UnitAttr, f32, f64, i64
    from xdsl.utils.exceptions import VerifyException
    from xdsl.utils.test_value import create_ssa_value

    value = create_ssa_value(TensorType(f32, [4, 4]))
    props = {"what": StringAttr("input"), "bytes": FloatAttr(16.0, f64), "seconds": FloatAttr(1e-8, f64),
             "tile_bytes": IntegerAttr(600, i64), "onchip_capacity": IntegerAttr(1000, i64), "double_buffered": UnitAttr()}
    dma = fpga.DmaInOp.create(operands=[value], result_types=[value.type], properties=props)
    with pytest.raises(VerifyException, match=r"fpga.dma_in \(input\): 2 x 600 B tile buffer, more than the 1000 B on chip"):
        dma.verify()
    props["tile_bytes"] = IntegerAttr(500, i64)
    fpga.DmaInOp.create(operands=[value], result_types=[value.type], properties=props).verify()


def test_tiles_that_cannot_fit_are_a_clear_error():
    # the first op in program order that cannot fit names itself: a GEMM's weight tile DMA or the GEMM
    with pytest.raises(PimcError, match=r"(fpga.dma_in \(weight\): 2 x \d+ B tile buffer|fpga.gemm: double-buffered "
                                        r"tiles need \d+ B on chip), more than the 100 B"):
        pimc.estimate("tiny-llama", "zcu102-meadow", seq_len=8, wbits=8, abits=8, overrides=["fpga.bram_bytes=100"])


def test_float_linears_cannot_run_on_the_int8_fpga():
    with pytest.raises(PimcError, match="no device can run llm.linear"):
        pimc.estimate("tiny-llama", "zcu102-meadow", seq_len=8)


def test_packed_weights_unpack_exactly_and_cut_weight_traffic():
    source, target = read_model("tiny-llama"), load_target("zcu102-meadow")

    def lowered(pack: bool):
        module = build_module(source.config, 8, 32)
        graph_passes(module, 8, 32, 8)
        select_dataflow(module, target, "tphs")
        store = dict(model_weights(source, module, "random", 0))
        rng = np.random.default_rng(0)
        for name, w in store.items():  # three levels per row: few distinct int8 chunks
            if name.endswith("proj.weight") or name == "lm_head.weight":
                store[name] = (rng.integers(-1, 2, w.shape) * 0.02).astype(np.float32)
        packings = pack_weights(module, store, target) if pack else {}
        return map_and_lower(module, target), store, packings

    (packed, store, packings), (plain, _, _) = lowered(True), lowered(False)
    assert packings and all(p.ratio > 3 for p in packings.values())
    assert "fpga.unpack" in op_names(packed.module) and "fpga.unpack" not in op_names(plain.module)
    a = Executor(packed.module, store).generate(PROMPT, 3)
    b = Executor(plain.module, store).generate(PROMPT, 3)
    assert np.array_equal(a.logits, b.logits)
    traffic = [sum(op.offchip_bytes.value.data for op in m.module.walk() if op.name == "fpga.gemm") for m in (packed, plain)]
    assert traffic[0] < traffic[1] / 2

    # the report carries each packed matrix once (prefill and decode share weights), as the pass packed it
    section = report_sections(packed.module)["weight_packing"]
    assert set(section["matrices"]) == set(packings)
    for name, p in packings.items():
        m = section["matrices"][name]
        assert (m["raw_bytes"], m["packed_bytes"], m["unique_chunks"], m["ids"]) == (p.raw_bytes, p.packed_bytes, p.unique, p.n_ids)
        assert m["ratio"] == pytest.approx(p.raw_bytes / p.packed_bytes)
    assert section["raw_bytes"] == sum(p.raw_bytes for p in packings.values())
    assert section["ratio"] == pytest.approx(section["raw_bytes"] / sum(p.packed_bytes for p in packings.values()))
    assert "weight_packing" not in report_sections(plain.module)


def test_lowered_program_prints_and_parses_back(runs):
    progs, _ = runs
    text = print_module(progs["gemm"].module)
    assert print_module(parse_module(text)) == text


def test_opt_pipeline_runs_the_passes_by_name():
    source = read_model("tiny-llama")
    module = build_module(source.config, 8, 32)
    run_passes(module, "quantize{bits=8 abits=8},tphs{target=zcu102-meadow dataflow=tphs},"
                       "map{target=zcu102-meadow},convert-llm-to-fpga{target=zcu102-meadow}")
    assert "fpga.tphs_q" in op_names(module) and not any(n.startswith("llm.") and n != "llm.weight" for n in op_names(module))


def test_dataflow_errors():
    with pytest.raises(PimcError, match="--dataflow 'bogus': expected one of auto, gemm, tphs"):
        pimc.estimate("tiny-llama", "zcu102-meadow", seq_len=8, wbits=8, abits=8, dataflow="bogus")
    with pytest.raises(PimcError, match="--dataflow tphs: target 'cpu-a76' has no FPGA device"):
        pimc.estimate("tiny-llama", "cpu-a76", seq_len=8, dataflow="tphs")


def test_cli_estimate_with_dataflow(capsys):
    from pimc.cli import app

    app(["estimate", "tiny-llama", "--target", "zcu102-meadow", "--seq-len", "8", "--wbits", "8", "--abits", "8",
         "--dataflow", "gemm", "--set", "fpga.offchip_gbps=1", "--json"], standalone_mode=False)
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "zcu102-meadow" and report["prefill"]["latency_s"] > 0


def test_bundle_round_trip(runs, tmp_path):
    progs, results = runs
    progs["tphs"].save(tmp_path / "b")
    again = pimc.load(tmp_path / "b").run(PROMPT, tokens=4)
    assert np.array_equal(again.logits, results["tphs"].logits)
    assert again.report.data["prefill"] == results["tphs"].report.data["prefill"]

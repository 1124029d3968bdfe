"""tiny-llama on ddr4-pud-x4: projections lowered to `pud`, tokens equal to the CPU's, layouts and capacity."""

import numpy as np
import pytest

import pimc
from pimc.dialects import pud
from pimc.errors import PimcError
from pimc.ir import parse_module, print_module
from pimc.passes.pud_layout import Allocator, make_layout
from pimc.targets import load_target
from pimc.targets.dram_pud.mechanism import gemv_geometry
from xdsl.utils.exceptions import VerifyException

# Make the host's int8 GEMV path (and only it) very slow, so the mapper puts every linear on PUD;
# the host phases of PUD ops run at the fp32 rate and are unaffected.
FORCE_PUD = ["cpu.simd_ops_per_cycle_per_core.int8=0.000001"]
PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def pud_program():
    return pimc.compile("tiny-llama", "ddr4-pud-x4", seq_len=8, context=32, wbits=4, abits=8, group=32, overrides=FORCE_PUD)


def test_projections_on_pud_rest_on_host(pud_program):
    ops = [op for op in pud_program.module.walk()]
    gemvs = [op for op in ops if isinstance(op, pud.GemvOp)]
    assert len(gemvs) == 2 * (2 * 7 + 1)  # prefill + decode: 7 projections per layer x 2 layers + lm_head
    assert {op.device.data for op in gemvs} == {"pud"} and {op.host.data for op in gemvs} == {"cpu"}
    kernels = {op.kernel.data for op in ops if op.name == "cpu.kernel"}
    assert "llm.linear" not in kernels and "llm.attention" in kernels and "llm.argmax" in kernels
    places = [op for op in ops if isinstance(op, pud.PlaceOp)]
    assert len(places) == len(gemvs)  # one per weight per function, the same layout in both
    by_weight = {}
    for p in places:
        by_weight.setdefault(p.weight.owner.properties["name"].data, set()).add(p.layout)
    assert len(by_weight) == 15 and all(len(v) == 1 for v in by_weight.values())


def test_phases_fill_the_mapped_slot(pud_program):
    fn = next(op for op in pud_program.module.ops if op.sym_name.data == "decode")
    ops = list(fn.walk())
    for i, op in enumerate(ops):
        if isinstance(op, pud.EncodeOp):
            gemv, agg = ops[i + 1], ops[i + 2]
            assert isinstance(gemv, pud.GemvOp) and isinstance(agg, pud.AggregateOp)
            t = op.start_s.value.data + op.latency_s.value.data
            assert gemv.start_s.value.data == pytest.approx(t)
            assert agg.start_s.value.data == pytest.approx(t + gemv.latency_s.value.data)
            assert gemv.offchip_bytes.value.data == 0.0  # row operations move no bytes off chip


def test_same_tokens_as_the_cpu(pud_program):
    ref = pimc.compile("tiny-llama", "cpu-i7-9700k", seq_len=8, context=32, wbits=4, abits=8, group=32)
    got, want = pud_program.run(PROMPT, tokens=5), ref.run(PROMPT, tokens=5)
    assert got.tokens == want.tokens
    np.testing.assert_allclose(got.logits, want.logits, atol=1e-4, rtol=1e-4)


def test_bundle_round_trip(pud_program, tmp_path):
    text = print_module(pud_program.module)
    assert print_module(parse_module(text)) == text
    pud_program.save(tmp_path / "b")
    again = pimc.load(tmp_path / "b")
    assert again.run(PROMPT, tokens=3).tokens == pud_program.run(PROMPT, tokens=3).tokens


def test_hand_checked_layout():
    device = load_target("ddr4-pud-x4").device("pud")
    alloc = Allocator(device)
    # 3 outputs x 200 inputs of 2-bit fields, one scale per output row, 2-bit activations:
    # blocks of 128 and 72 inputs, one chunk of 3 columns -> tasks on slots 0 (rank 0) and 1 (rank 1)
    geo = gemv_geometry(device, 3, 200, 2, 2, 200)
    layout = make_layout(device, geo, *alloc.place("w", geo))
    assert [list(b) for b in geo.blocks] == [[128], [72]] and geo.chunks == (3,)
    assert layout.subarrays_offsets() == ((0, 0), (0, 0))
    # bit 1 of output 2, input 130: block 1 (inputs 128..199), input 2 of the block
    #   -> rank 1, bank 0, subarray 0, row 2 * (2 * 2 + 1) = 10, reliable column 2
    assert layout.locate(3, 200, m=2, j=130, i=1) == (1, 0, 0, 10, 2)
    assert layout.locate(3, 200, m=0, j=0, i=0) == (0, 0, 0, 0, 0)
    # a second weight shares the same subarrays beside the first, in its columns
    other = gemv_geometry(device, 5, 100, 2, 2, 100)
    second = make_layout(device, other, *alloc.place("w2", other))
    assert second.subarrays_offsets() == ((0,), (3,))
    assert second.locate(5, 100, m=4, j=99, i=0) == (0, 0, 0, 2 * 2 * 99, 7)
    layout.check(3, 200, 2)
    with pytest.raises(VerifyException, match="needs 2 tasks"):
        make_layout(device, geo, [0], [0]).check(3, 200, 2)
    with pytest.raises(VerifyException, match=r"columns \[57670, 57673\) outside the 57671 reliable columns"):
        make_layout(device, geo, [0, 0], [0, 57670]).check(3, 200, 2)


def test_capacity_overflow_is_a_clear_error():
    small = FORCE_PUD + ["pud.subarrays_per_bank=1", "pud.columns_per_row=256", "pud.modules=2", "pud.ranks_per_module=1"]
    with pytest.raises(PimcError, match=r"device 'pud': weight '.*' does not fit: bank \(\d, \d+\) has no subarray"):
        pimc.compile("tiny-llama", "ddr4-pud-x4", seq_len=8, context=32, wbits=4, abits=8, overrides=small)


def test_run_reports_the_commands_of_the_actual_bits(pud_program):
    result = pud_program.run(PROMPT, tokens=3)
    stats = result.report.data["simulator"]["pud"]
    assert stats["gemv_rows"] == 15 * (8 + 2)  # 15 linears x (8 prompt rows + 2 decode steps)
    assert stats["row_ops"] > 0 and stats["row_ops_scheduled"] > 0
    assert 0.3 < stats["activation_bit_density"] < 0.7  # two's-complement codes of a random model
    assert stats["row_ops"] != stats["row_ops_scheduled"]  # the schedule assumed density 0.5


def test_pud_quantize_keeps_low_bit_linears_and_lowers_exactly():
    from xdsl.context import Context

    from pimc.execute import Executor
    from pimc.frontends import build_module, model_weights, read_model
    from pimc.passes.pud_quantize import PudQuantizePass
    from pimc.passes.quantize import QuantizePass
    from pimc.pipeline import map_and_lower

    source = read_model("tiny-llama")
    module = build_module(source.config, 8, 32)
    QuantizePass(bits=2, group=32, only="q_proj").apply(Context(), module)
    PudQuantizePass(bits=3, group=64, symmetric=False, abits=6).apply(Context(), module)
    linears = [op for op in module.walk() if op.name == "llm.linear"]
    formats = {(op.weight.owner.properties["name"].data.split(".")[-2], op.wquant.format.data, op.wquant.symmetric.data) for op in linears}
    assert ("q_proj", "int2", 1) in formats and ("down_proj", "int3", 0) in formats
    assert all(op.aquant.format.data == "int6" for op in linears)
    weights = model_weights(source, module, "random", 0)
    want = Executor(module.clone(), weights).generate(PROMPT, 3)
    lowered = map_and_lower(module, load_target("ddr4-pud-x4", FORCE_PUD))
    assert sum(isinstance(op, pud.GemvOp) for op in lowered.module.walk()) == 30
    got = Executor(lowered.module, weights).generate(PROMPT, 3)
    assert got.tokens == want.tokens
    np.testing.assert_allclose(got.logits, want.logits, atol=1e-4, rtol=1e-4)


def test_pud_quantize_rejects_float_storage():
    from pimc.passes.pud_quantize import pud_weight_quant

    with pytest.raises(PimcError, match="16-bit weights are not integer codes"):
        pud_weight_quant(16, 32, True)
    with pytest.raises(PimcError, match="ternary codes have no zero points"):
        pud_weight_quant(1.58, 32, False)

"""tiny-llama on pimllm-rram (crossbars + systolic array) and tpu-llm: lowering, residency, capacity,
verifiers, and agreement with the `llm` reference within the quantization used."""

import numpy as np
import pytest
from xdsl.utils.exceptions import VerifyException

import pimc
from pimc.dialects import cim, llm, systolic
from pimc.dialects.cim import RESIDENCY_ATTR
from pimc.dialects.cim_semantics import CrossbarConfig, crossbar_mvm, crossbar_state
from pimc.errors import PimcError
from pimc.execute import Executor
from pimc.ir import parse_module, print_module, run_passes
from pimc.targets import Target, load_target
from pimc.targets.cim import tile_linear

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def program():
    return pimc.compile("tiny-llama", "pimllm-rram", seq_len=8, context=32, wbits=1.58, abits=8)


def ops_of(module, cls):
    return [op for op in module.walk() if isinstance(op, cls)]


def test_lowered_to_crossbars_and_array(program):
    assert not [op for op in program.module.walk() if isinstance(op, llm.LlmOp) and not isinstance(op, llm.WeightOp)]
    assert ops_of(program.module, cim.LinearOp) and ops_of(program.module, systolic.AttentionOp)
    assert all(op.device.data == "sa" for op in ops_of(program.module, systolic.AttentionOp))
    again = parse_module(print_module(program.module))  # the program text parses and verifies
    assert print_module(again) == print_module(program.module)


def test_matches_reference_within_quantization(program):
    generated = Executor(program.module, program.weights).generate(PROMPT, 16)
    reference = Executor(parse_module(program.llm_ir), program.weights).generate(PROMPT, 16)
    # linears are exact on ideal crossbars; attention runs with int8 operands on the array
    assert generated.tokens == reference.tokens
    scale = np.abs(reference.logits).max()
    assert np.abs(generated.logits - reference.logits).max() < 0.03 * scale


def test_weights_programmed_once_for_a_16_token_decode(program):
    executor = Executor(program.module, program.weights)
    executor.generate(PROMPT, 17)  # prefill + 16 decode steps
    state = crossbar_state(executor.interpreter)
    residency = program.module.attributes[RESIDENCY_ATTR].data["xbar"].data
    per_call = {
        fn: sum(1 for op in ops_of(program.module, cim.LinearOp) if op.parent_op().sym_name.data == fn)
        for fn in ("prefill", "decode")
    }
    assert state.program_events == residency["weights"].value.data  # each resident weight once
    assert state.executions == per_call["prefill"] + 16 * per_call["decode"]
    assert state.adc.max_abs_error == 0.0  # ideal ADC
    executor.generate(PROMPT, 2)  # a new run starts from blank crossbars
    assert state.program_events == residency["weights"].value.data


def test_residency_allocation_is_disjoint_and_shared_by_functions(program):
    ranges = {}
    for op in ops_of(program.module, cim.LinearOp):
        name = op.weight.owner.properties["name"].data
        span = (op.first_crossbar.value.data, op.crossbars.value.data)
        assert ranges.setdefault(name, span) == span  # prefill and decode share the cells
    spans = sorted(ranges.values())
    assert all(a + n <= b for (a, n), (b, _) in zip(spans, spans[1:]))
    residency = program.module.attributes[RESIDENCY_ATTR].data["xbar"].data
    assert residency["crossbars_used"].value.data == sum(n for _, n in spans)
    assert residency["program_energy_j"].value.data > 0 and residency["program_latency_s"].value.data > 0


def test_weights_that_do_not_fit_go_to_the_array_with_the_reason():
    program = pimc.compile("tiny-llama", "pimllm-rram", seq_len=4, context=8, wbits=1.58, abits=8, overrides=["xbar.tiles=1"])
    rows = [r for rows in program.manifest["placement"].values() for r in rows if r["kind"] == "llm.linear"]
    on_array = [r for r in rows if r["device"] == "sa"]
    assert on_array and all("crossbars full" in r["ruled_out"]["xbar"] for r in on_array)
    residency = program.module.attributes[RESIDENCY_ATTR].data["xbar"].data
    assert residency["crossbars_used"].value.data <= 16


def _crossbars_only_for_linears(tiles: int, crossbar_rows: int = 256, per_tile: int = 16) -> Target:
    """pimllm-rram's crossbars beside an FPGA whose 4-bit PEs cannot run its 8-bit-input linears."""
    raw = load_target("pimllm-rram").model_dump(mode="json", exclude_none=True)
    xbar = {**raw["devices"][0], "tiles": tiles, "crossbar_rows": crossbar_rows, "crossbars_per_tile": per_tile}
    fpga = load_target("zcu102-meadow").model_dump(mode="json", exclude_none=True)["devices"][0]
    fpga.update(memory="lpddr", operand_bits=4, activation_bits=4)
    return Target.model_validate({**raw, "devices": [xbar, fpga]})


def test_capacity_error_names_needed_and_available():
    with pytest.raises(PimcError, match=r"cim device 'xbar': the resident weights need 118 crossbars, it has 16 "
                                        r"\(1 tiles x 16\); weight-scale groups of 32 use only 32 of the 256 crossbar rows"):
        pimc.compile("tiny-llama", _crossbars_only_for_linears(1), seq_len=4, context=8, wbits=1.58, abits=8)
    with pytest.raises(PimcError, match=r"need \d+ crossbars, it has 4 \(1 tiles x 4\)$"):  # 128-wide groups fill 128 rows
        pimc.compile("tiny-llama", _crossbars_only_for_linears(1, 128, 4), seq_len=4, context=8, wbits=1.58, abits=8, group=128)


def test_golden_lowered_program(program, golden):
    golden.check("tiny-llama.pimllm-rram.mlir", print_module(program.module))


def test_hand_checked_tiling_of_a_small_matrix():
    xbar = load_target("pimllm-rram", ["xbar.crossbar_rows=8", "xbar.crossbar_cols=8"]).device("xbar")
    t = tile_linear(xbar, k=20, n=10, weight_bits=1.6, act_bits=8, group=20)
    # K 20 -> slices [0,8), [8,16), [16,20); 8 columns hold 4 (G+, G-) pairs -> outputs [0,4), [4,8), [8,10)
    assert (t.slice_k, t.k_slices, t.outputs_per_crossbar, t.n_slices, t.crossbars) == (8, 3, 4, 3, 9)
    assert tile_linear(xbar, k=20, n=10, weight_bits=1.6, act_bits=8, group=4).slice_k == 4  # groups of 4
    assert tile_linear(xbar, k=20, n=10, weight_bits=1.6, act_bits=8, group=12).slice_k == 6  # largest divisor of 12 <= 8
    rng = np.random.default_rng(0)
    x, w = rng.integers(-128, 128, size=(2, 20)), rng.integers(-1, 2, size=(10, 20))
    cfg = CrossbarConfig(slice_k=8, weight_slices=1, cell_bits=1, act_bits=8, dac_bits=1, adc_bits=8)
    partial = crossbar_mvm(x, w, cfg)
    for j, (a, b) in enumerate([(0, 8), (8, 16), (16, 20)]):
        np.testing.assert_array_equal(partial[:, j, :], x[:, a:b] @ w[:, a:b].T)


def test_saturating_adc_error_is_reported(program):
    reference = Executor(program.module, program.weights).generate(PROMPT, 4)

    def run(*overrides):
        prog = pimc.compile("tiny-llama", "pimllm-rram", seq_len=8, context=32, wbits=1.58, abits=8,
                            overrides=["xbar.adc_mode=saturate", *overrides])
        executor = Executor(prog.module, prog.weights)
        return executor.generate(PROMPT, 4), crossbar_state(executor.interpreter).adc

    # 32-row slices with analog subtraction span -32..32: a 5-bit ADC over all of it has an LSB of 2,
    # and its rounding errors, weighted up to 2**7 by the bit-streaming, swamp the result
    coarse, stats = run("xbar.adc_bits=5")
    assert stats.max_abs_error == 1.0 and stats.sum_abs_error > 0.4 * stats.conversions
    assert np.abs(coarse.logits - reference.logits).max() > 0.5 * np.abs(reference.logits).max()
    # the same ADC over a quarter of the range resolves every level; only rare saturations remain
    clipped, stats = run("xbar.adc_bits=5", "xbar.adc_full_scale=0.25")
    assert 0 < stats.sum_abs_error < 1e-4 * stats.conversions
    assert clipped.tokens == reference.tokens


def test_verifier_checks_the_layout(program):
    op = ops_of(program.module, cim.LinearOp)[0].clone()
    op.properties["crossbars"] = llm.i64_attr(op.crossbars.value.data + 1)
    with pytest.raises(VerifyException, match="crossbars = .* K slices x .* N slices"):
        op.verify()
    op = ops_of(program.module, cim.LinearOp)[0].clone()
    op.properties["slice_k"] = llm.i64_attr(300)
    with pytest.raises(VerifyException, match="slice_k 300 must be in"):
        op.verify()


def test_tpu_baseline_runs_everything_on_the_array():
    prog = pimc.compile("tiny-llama", "tpu-llm", seq_len=8, context=32, wbits=1.58, abits=8)
    assert ops_of(prog.module, systolic.GemmOp) and not ops_of(prog.module, cim.LinearOp)
    generated = Executor(prog.module, prog.weights).generate(PROMPT, 4)
    reference = Executor(parse_module(prog.llm_ir), prog.weights).generate(PROMPT, 4)
    assert generated.tokens == reference.tokens


def test_passes_run_alone_with_a_target(program):
    module = parse_module(program.llm_ir)
    run_passes(module, "map{target=pimllm-rram},lower-cim{target=pimllm-rram},convert-llm-to-systolic{target=pimllm-rram}")
    assert ops_of(module, cim.LinearOp) and RESIDENCY_ATTR in module.attributes
    with pytest.raises(PimcError, match=r"crossbar-tile: no target"):
        run_passes(parse_module(program.llm_ir), "map{target=pimllm-rram},crossbar-tile")


def test_run_report_carries_simulator_stats(program):
    report = program.run(PROMPT, tokens=3).report.data
    cim_stats = report["simulator"]["cim"]
    assert cim_stats["programmed_weights"] == program.module.attributes[RESIDENCY_ATTR].data["xbar"].data["weights"].value.data
    assert cim_stats["adc_conversions"] > 0 and cim_stats["adc_max_abs_error"] == 0.0
    assert report["simulator"]["systolic"]["array_cycles"] > 0

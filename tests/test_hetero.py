"""Heterogeneous targets: the mixed presets load, tiny-llama compiled for them runs in the simulator
and matches the reference, every device kind's passes and lowerings compose in one module, crossbar
residency is planned before mapping, and the per-op placement table holds hand-checked costs."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
from xdsl.dialects.builtin import DictionaryAttr, StringAttr

import pimc
from pimc.dialects import cim, cpu, fpga, llm, pud, systolic
from pimc.execute import Executor
from pimc.frontends import read_model
from pimc.ir import parse_module
from pimc.mapping.from_ir import EXCLUDE_ATTR
from pimc.pipeline import graph_passes, map_and_lower, target_passes, weight_passes
from pimc.targets import PRESETS_DIR, load_target

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]
MIXES = ("edge-soc", "cpu-pud", "cim-systolic-cpu")


@pytest.mark.parametrize("name", MIXES)
def test_mixed_presets_load_and_every_number_names_its_source(name):
    target = load_target(name)
    assert len({d.kind for d in target.devices}) >= 2
    previous = ""
    for line in (PRESETS_DIR / f"{name}.toml").read_text().splitlines():
        value = line.split("#")[0]
        if re.search(r"=\s*[-\d{]", value):  # a number (or a table of numbers): a comment on it or just above
            assert "#" in line or previous.startswith("#"), f"{name}: no source for: {line}"
        previous = line


def test_edge_soc_has_every_pim_kind_and_a_link():
    target = load_target("edge-soc")
    assert {d.kind for d in target.devices} == {"cpu", "dram_pud", "fpga", "cim"}
    assert target.device("pud").memory == target.device("cpu").memory == target.device("fpga").memory  # shared DDR4
    assert [link.endpoints for link in target.links] == [["ddr4", "lpddr"]]
    alone = target.restricted_to(["xbar", "cpu"])
    assert [m.name for m in alone.memories] == ["ddr4", "lpddr"] and [link.name for link in alone.links] == ["pcie"]
    assert alone.device("xbar") == target.device("xbar")


def _cpu_reference(wbits, abits, group=32):
    program = pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32, wbits=wbits, abits=abits, group=group)
    return Executor(program.module, program.weights).generate(PROMPT, 8)


@pytest.mark.parametrize("name", MIXES)
def test_tiny_llama_on_mixed_presets_matches_the_cpu_program(name):
    program = pimc.compile("tiny-llama", name, seq_len=8, context=32, wbits=4, abits=8)
    generated = Executor(program.module, program.weights).generate(PROMPT, 8)
    reference = Executor(parse_module(program.llm_ir), program.weights).generate(PROMPT, 8)
    on_cpu = _cpu_reference(4, 8)
    assert generated.tokens == reference.tokens == on_cpu.tokens
    scale = np.abs(on_cpu.logits).max()
    # every path is exact at W4A8 except attention on a systolic array, which has int8 operands
    on_array = any(isinstance(op, systolic.AttentionOp) for op in program.module.walk())
    assert np.abs(generated.logits - on_cpu.logits).max() < (0.03 if on_array else 1e-5) * scale


def _force(module, target):
    """Give each linear one allowed device in turn (cpu, pud, fpga, xbar) and alternate attention,
    norms and the rest between cpu and fpga, so every kind's lowering runs in one module."""
    names = [d.name for d in target.devices]
    turn = Counter()
    for op in module.walk():
        if not isinstance(op, llm.LlmOp) or isinstance(op, llm.WeightOp):
            continue
        choices = names if isinstance(op, llm.LinearOp) else ["cpu", "fpga"]
        allowed = choices[turn[op.name] % len(choices)]
        turn[op.name] += 1
        op.attributes[EXCLUDE_ATTR] = DictionaryAttr({n: StringAttr("test") for n in names if n != allowed})


@pytest.fixture(scope="module")
def forced_edge_soc():
    target = load_target("edge-soc")
    source = read_model("tiny-llama")
    module = source.build(8, 32)
    graph_passes(module, 4, 32, 8)
    target_passes(module, target, "tphs")
    store = source.load_weights(module, "random", 0)
    weight_passes(module, store, target)
    _force(module, target)
    return map_and_lower(module, target), store


def test_every_device_kind_lowers_in_one_module(forced_edge_soc):
    lowered, _ = forced_edge_soc
    ops = Counter(type(op) for op in lowered.module.walk())
    for cls in (cpu.KernelOp, pud.GemvOp, pud.PlaceOp, fpga.GemmOp, fpga.TphsOp, fpga.KernelOp, cim.LinearOp):
        assert ops[cls] > 0, cls.name
    # weight packing ran on every integer linear (random weights are too high-entropy to pack: a note says so)
    assert all("fpga.packing" in op.attributes or "fpga.packing_note" in op.attributes
               for op in parse_module(lowered.llm_ir).walk() if isinstance(op, llm.LinearOp))
    for attr in ("cim.residency", "pud.placement"):
        assert attr in lowered.module.attributes


def test_forced_mix_matches_reference_within_quantization(forced_edge_soc):
    lowered, store = forced_edge_soc
    generated = Executor(lowered.module, store).generate(PROMPT, 8)
    reference = Executor(parse_module(lowered.llm_ir), store).generate(PROMPT, 8)
    on_cpu = _cpu_reference(4, 8)
    assert generated.tokens == reference.tokens == on_cpu.tokens
    # PUD and ideal crossbars are bit-exact; the FPGA's W8A8 linears and attention match the
    # reference's quantized values up to float32 rounding
    assert np.abs(generated.logits - reference.logits).max() < 1e-5 * np.abs(reference.logits).max()


def test_crossbar_residency_is_planned_before_mapping():
    # 64 crossbars hold only a few of tiny-llama's W4A8 weights: the others go to other devices,
    # each with the reason in its placement row, and the residency fits
    program = pimc.compile("tiny-llama", "edge-soc", seq_len=8, context=32, wbits=4, abits=8, group=128,
                           overrides=["xbar.tiles=4", "cpu.op_overhead_s=2e-4", "fpga.op_overhead_cycles=20000"])
    rows = [r for rows in program.manifest["placement"].values() for r in rows if r["kind"] == "llm.linear"]
    on_xbar = [r for r in rows if r["device"] == "xbar"]
    ruled_out = [r for r in rows if "xbar" in r.get("ruled_out", {})]
    assert on_xbar and ruled_out
    assert all(r["ruled_out"]["xbar"].startswith("crossbars full") for r in ruled_out)
    assert not {w for r in on_xbar for w in r["weights"]} & {w for r in ruled_out for w in r["weights"]}
    residency = program.module.attributes["cim.residency"].data["xbar"].data
    assert residency["crossbars_used"].value.data <= 64
    assert Executor(program.module, program.weights).generate(PROMPT, 8).tokens == _cpu_reference(4, 8, 128).tokens


def test_placement_row_costs_by_hand():
    program = pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32)
    rows = program.report().data["placement"]["decode"]
    head = [r for r in rows if r["kind"] == "llm.linear" and r.get("weights") == ["lm_head.weight"]]
    assert len(head) == 1
    row = head[0]
    # decode lm_head: [1, 128] x [512, 128]^T in fp32 on 4x A76 @ 2.4 GHz (16 fp32 ops/cycle/core),
    # LPDDR4X at 17.068 GB/s and 40 pJ/B; 26 pJ/op, 2.5 W static, 5 us dispatch
    flops = 2 * 512 * 128
    nbytes = 512 * 128 * 4 + 128 * 4 + 512 * 4
    latency = 5e-6 + max(flops / (4 * 2.4e9 * 16), nbytes / 17.068e9)
    energy = (flops * 26 + nbytes * 40) * 1e-12 + 2.5 * latency
    assert row["device"] == "cpu" and row["why"] == "only cpu runs llm.linear"
    assert math.isclose(row["latency_s"], latency, rel_tol=1e-12)
    assert math.isclose(row["energy_j"], energy, rel_tol=1e-12)
    assert row["offchip_bytes"] == nbytes
    assert row["candidates"] == {"cpu": {"latency_s": row["latency_s"], "energy_j": row["energy_j"], "offchip_bytes": nbytes}}
    assert len(rows) == sum(1 for op in parse_module(program.llm_ir).walk()
                            if isinstance(op, llm.LlmOp) and not isinstance(op, llm.WeightOp)
                            and op.parent_op().sym_name.data == "decode")


def test_placement_shows_alternatives_and_survives_the_bundle(tmp_path):
    program = pimc.compile("tiny-llama", "edge-soc", seq_len=8, context=32, wbits=4, abits=8)
    rows = program.report().data["placement"]["decode"]
    linear = next(r for r in rows if r["kind"] == "llm.linear")
    assert set(linear["candidates"]) | set(linear.get("ruled_out", {})) == {"cpu", "pud", "fpga", "xbar"}
    fastest = min(linear["candidates"], key=lambda d: linear["candidates"][d]["latency_s"])
    assert linear["device"] == fastest or "earliest finish" in linear["why"]
    markdown = program.report().to_markdown()
    assert "## Placement: which ops went where and why" in markdown and "| llm.linear |" in markdown
    loaded = pimc.load(program.save(tmp_path / "b"))
    assert loaded.report().data["placement"] == program.report().data["placement"]

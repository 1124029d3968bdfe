"""Weight tensors of the mapping problem have their stored size: a linear's weight matrix as
quantized, its bias (and any other weight) at its own elements, and one size per weight name
however many `llm.weight` ops read it (exporters share identical initializers)."""

from __future__ import annotations

from xdsl.dialects import func

from pimc.ir import parse_module
from pimc.mapping.from_ir import build_problem
from pimc.targets import load_target

LINEAR = ("llm.linear %x, %w bias %b {wquant = #llm.quant<int4, group = 64>} "
          ": (tensor<1x256xf32>, tensor<8x256xf32>, tensor<8xf32>) -> tensor<1x8xf32>")


def _problem(body: str):
    module = parse_module("func.func @f(%x: tensor<1x256xf32>) -> tensor<1x8xf32> {\n" + body + "}")
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    return build_problem(fn, load_target("cpu-a76"))[0]


def test_a_bias_keeps_its_own_bytes():
    p = _problem('  %w = llm.weight "w" : tensor<8x256xf32>\n'
                 '  %b = llm.weight "b" : tensor<8xf32>\n'
                 f"  %y = {LINEAR}\n"
                 "  func.return %y : tensor<1x8xf32>\n")
    assert p.tensors["w:w"].size_bytes == 8 * 256 // 2 + 8 * 4 * 2  # int4 codes + an f16 scale per 64
    assert p.tensors["w:b"].size_bytes == 8 * 4  # was the weight's 1088 B: a bias read as a matrix


def test_a_shared_weight_has_one_size_whatever_the_op_order():
    """A table read as a quantized linear's weight and, under the same name, by an add is stored
    once, quantized (the last `llm.weight` op of the name used to set it: here 8192 B)."""
    linear = f"%y = {LINEAR}"
    add = "%s = llm.add %w2, %w2 : (tensor<8x256xf32>, tensor<8x256xf32>) -> tensor<8x256xf32>"
    for first, second in ((linear, add), (add, linear)):
        p = _problem('  %w = llm.weight "w" : tensor<8x256xf32>\n'
                     '  %b = llm.weight "b" : tensor<8xf32>\n'
                     '  %w2 = llm.weight "w" : tensor<8x256xf32>\n'
                     f"  {first}\n  {second}\n"
                     "  func.return %y : tensor<1x8xf32>\n")
        assert p.tensors["w:w"].size_bytes == 1088


def test_a_weight_read_inside_a_fused_op_has_its_quantized_size():
    """A fused linear + silu reads `w` through its body: the problem stores it as the inner linear's
    int4 codes + f16 scales (1088 B), as the fused op's cost model prices it, not as 8 x 256 f32."""
    fused = ("  %y = llm.fused %x, %w {pattern = \"linear_act\"} : (tensor<1x256xf32>, tensor<8x256xf32>) "
             "-> tensor<1x8xf32> {\n"
             "  ^bb0(%a: tensor<1x256xf32>, %v: tensor<8x256xf32>):\n"
             "    %1 = llm.linear %a, %v {wquant = #llm.quant<int4, group = 64>} "
             ": (tensor<1x256xf32>, tensor<8x256xf32>) -> tensor<1x8xf32>\n"
             "    %2 = llm.silu %1 : (tensor<1x8xf32>) -> tensor<1x8xf32>\n"
             "    llm.yield %2 : tensor<1x8xf32>\n"
             "  }\n")
    p = _problem('  %w = llm.weight "w" : tensor<8x256xf32>\n' + fused + "  func.return %y : tensor<1x8xf32>\n")
    assert p.tensors["w:w"].size_bytes == 8 * 256 // 2 + 8 * 4 * 2 == 1088
    fused_op = next(o for o in p.ops if o.kind == "llm.fused")
    assert "w:w" in fused_op.inputs

"""The `llm` dialect's syntax and verifiers.

Every op in `llm.LLM_OPS` has a valid snippet here: custom syntax parses, verifies and prints to a
fixed point, and the generic form parses back to a structurally equivalent module. A new op without
a snippet fails `test_every_op_has_a_snippet`. Invalid snippets must fail verification with a message
that names the op and says what is wrong.
"""

from __future__ import annotations

from io import StringIO

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from pimc.dialects import llm
from pimc.dialects.llm import LLM, QuantAttr


def make_context() -> Context:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Func)
    ctx.load_dialect(LLM)
    return ctx


def parse(text: str) -> ModuleOp:
    module = Parser(make_context(), text).parse_module()
    return module


def show(module: ModuleOp, generic: bool = False) -> str:
    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(module)
    return out.getvalue()


def wrap(args: str, body: str) -> str:
    """A func.func holding `body` (its last value is not returned: ops are checked in isolation)."""
    return f"func.func @f({args}) {{\n{body}\n  func.return\n}}\n"


# --------------------------------------------------------------------------- valid snippets
# op class -> (function arguments, body)

F = "tensor<4x8xf32>"
FUSED = (
    "  %w = llm.weight \"w\" : tensor<6x8xf32>\n"
    "  %0 = llm.fused %x, %w {pattern = \"linear_act\"} : (tensor<4x8xf32>, tensor<6x8xf32>) -> tensor<4x6xf32> {\n"
    "  ^bb0(%a: tensor<4x8xf32>, %b: tensor<6x8xf32>):\n"
    "    %1 = llm.linear %a, %b : (tensor<4x8xf32>, tensor<6x8xf32>) -> tensor<4x6xf32>\n"
    "    %2 = llm.silu %1 : (tensor<4x6xf32>) -> tensor<4x6xf32>\n"
    "    llm.yield %2 : tensor<4x6xf32>\n"
    "  }"
)
SNIPPETS: dict[type, tuple[str, str]] = {
    llm.WeightOp: ("", '  %w = llm.weight "model.embed_tokens.weight" : tensor<16x8xf32>'),
    llm.EmbeddingOp: (
        "%ids: tensor<4xi64>, %t: tensor<16x8xf32>",
        "  %0 = llm.embedding %ids, %t : (tensor<4xi64>, tensor<16x8xf32>) -> tensor<4x8xf32>",
    ),
    llm.RMSNormOp: (
        f"%x: {F}, %w: tensor<8xf32>",
        f"  %0 = llm.rmsnorm %x, %w {{eps = 1.000000e-05 : f64}} : ({F}, tensor<8xf32>) -> {F}\n"
        f"  %1 = llm.rmsnorm %x, %w {{eps = 1.000000e-06 : f64, offset = 1.000000e+00 : f64}}"
        f" : ({F}, tensor<8xf32>) -> {F}",
    ),
    llm.LayerNormOp: (
        f"%x: {F}, %w: tensor<8xf32>, %b: tensor<8xf32>",
        f"  %0 = llm.layernorm %x, %w bias %b {{eps = 1.000000e-05 : f64}}"
        f" : ({F}, tensor<8xf32>, tensor<8xf32>) -> {F}\n"
        f"  %1 = llm.layernorm %x, %w {{eps = 1.000000e-05 : f64}} : ({F}, tensor<8xf32>) -> {F}",
    ),
    llm.LinearOp: (
        f"%x: {F}, %w: tensor<16x8xf32>, %b: tensor<16xf32>",
        f"  %0 = llm.linear %x, %w : ({F}, tensor<16x8xf32>) -> tensor<4x16xf32>\n"
        f"  %1 = llm.linear %x, %w bias %b : ({F}, tensor<16x8xf32>, tensor<16xf32>) -> tensor<4x16xf32>\n"
        f"  %2 = llm.linear %x, %w {{wquant = #llm.quant<int4, group = 4, scale = per_group, scale_bits = 16,"
        f" symmetric = 1>}} : ({F}, tensor<16x8xf32>) -> tensor<4x16xf32>",
    ),
    llm.MatmulOp: (
        "%a: tensor<2x4x8xf32>, %b: tensor<8x3xf32>",
        "  %0 = llm.matmul %a, %b : (tensor<2x4x8xf32>, tensor<8x3xf32>) -> tensor<2x4x3xf32>",
    ),
    llm.RopeOp: (
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi64>",
        '  %0 = llm.rope %x, %p {theta = 1.000000e+04 : f64, style = "half", rotary_dim = 8 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<4x2x8xf32>\n"
        '  %1 = llm.rope %x, %p {theta = 5.000000e+05 : f64, style = "interleaved", rotary_dim = 4 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<4x2x8xf32>",
    ),
    llm.AttentionOp: (
        "%q: tensor<4x4x8xf32>, %k: tensor<6x2x8xf32>, %v: tensor<6x2x8xf32>, %p: tensor<4xi64>",
        "  %0 = llm.attention %q, %k, %v, %p {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 8 : i64,"
        " scale = 0.35355339059327373 : f64, causal, window = 3 : i64}"
        " : (tensor<4x4x8xf32>, tensor<6x2x8xf32>, tensor<6x2x8xf32>, tensor<4xi64>) -> tensor<4x4x8xf32>\n"
        "  %1 = llm.attention %q, %k, %v, %p {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 8 : i64,"
        " scale = 1.250000e-01 : f64}"
        " : (tensor<4x4x8xf32>, tensor<6x2x8xf32>, tensor<6x2x8xf32>, tensor<4xi64>) -> tensor<4x4x8xf32>",
    ),
    llm.SoftmaxOp: (f"%x: {F}", f"  %0 = llm.softmax %x {{axis = -1 : i64}} : ({F}) -> {F}"),
    llm.SiluOp: (f"%x: {F}", f"  %0 = llm.silu %x : ({F}) -> {F}"),
    llm.GeluOp: (
        f"%x: {F}",
        f'  %0 = llm.gelu %x {{approximate = "tanh"}} : ({F}) -> {F}\n'
        f'  %1 = llm.gelu %x {{approximate = "none"}} : ({F}) -> {F}',
    ),
    llm.ReluOp: (f"%x: {F}", f"  %0 = llm.relu %x : ({F}) -> {F}"),
    llm.Relu2Op: (f"%x: {F}", f"  %0 = llm.relu2 %x : ({F}) -> {F}"),
    llm.AddOp: (
        f"%x: {F}, %y: tensor<8xf32>, %i: tensor<4xi64>",
        f"  %0 = llm.add %x, %y : ({F}, tensor<8xf32>) -> {F}\n"
        "  %1 = llm.add %i, %i : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>",
    ),
    llm.MulOp: (
        f"%x: {F}, %y: tensor<4x1xf32>",
        f"  %0 = llm.mul %x, %y : ({F}, tensor<4x1xf32>) -> {F}",
    ),
    llm.KVCacheReadOp: ("", '  %0 = llm.kv_cache_read {cache = "layers.0.k"} : tensor<32x2x8xf32>'),
    llm.KVCacheAppendOp: (
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi64>",
        '  %0 = llm.kv_cache_append %x, %p {cache = "layers.0.k"}'
        " : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<32x2x8xf32>",
    ),
    llm.ArgmaxOp: (f"%x: {F}", f"  %0 = llm.argmax %x {{axis = -1 : i64}} : ({F}) -> tensor<4xi64>"),
    llm.ReshapeOp: (f"%x: {F}", f"  %0 = llm.reshape %x : ({F}) -> tensor<4x2x4xf32>"),
    llm.TransposeOp: (
        "%x: tensor<4x2x8xf32>",
        "  %0 = llm.transpose %x {perm = array<i64: 1, 0, 2>} : (tensor<4x2x8xf32>) -> tensor<2x4x8xf32>",
    ),
    llm.ConcatOp: (
        f"%x: {F}, %y: tensor<4x3xf32>",
        f"  %0 = llm.concat %x, %y {{axis = 1 : i64}} : ({F}, tensor<4x3xf32>) -> tensor<4x11xf32>",
    ),
    llm.SliceOp: (
        f"%x: {F}",
        f"  %0 = llm.slice %x {{axis = 1 : i64, start = 2 : i64, end = 5 : i64}} : ({F}) -> tensor<4x3xf32>\n"
        f"  %1 = llm.slice %x {{axis = 1 : i64, start = 0 : i64, end = 8 : i64, step = 2 : i64}} : ({F}) -> tensor<4x4xf32>",
    ),
    llm.UnaryOp: (f"%x: {F}", f'  %0 = llm.unary %x {{fn = "exp"}} : ({F}) -> {F}'),
    llm.BinaryOp: (
        f"%x: {F}, %y: tensor<8xf32>",
        f'  %0 = llm.binary %x, %y {{fn = "sub"}} : ({F}, tensor<8xf32>) -> {F}\n'
        f'  %1 = llm.binary %x, %y {{fn = "lt"}} : ({F}, tensor<8xf32>) -> tensor<4x8xi1>',
    ),
    llm.SelectOp: (
        f"%c: tensor<4x8xi1>, %x: {F}, %y: tensor<1xf32>",
        f"  %0 = llm.select %c, %x, %y : (tensor<4x8xi1>, {F}, tensor<1xf32>) -> {F}",
    ),
    llm.CastOp: (f"%x: {F}", f"  %0 = llm.cast %x : ({F}) -> tensor<4x8xi64>"),
    llm.ReduceOp: (
        f"%x: {F}",
        f'  %0 = llm.reduce %x {{fn = "mean", axes = array<i64: 1>, keepdims}} : ({F}) -> tensor<4x1xf32>\n'
        f'  %1 = llm.reduce %x {{fn = "max", axes = array<i64: 0, 1>}} : ({F}) -> tensor<f32>',
    ),
    llm.GatherOp: (
        f"%x: {F}, %i: tensor<2xi64>",
        f"  %0 = llm.gather %x, %i {{axis = 1 : i64}} : ({F}, tensor<2xi64>) -> tensor<4x2xf32>",
    ),
    llm.BroadcastOp: ("%x: tensor<1x8xf32>", "  %0 = llm.broadcast %x : (tensor<1x8xf32>) -> tensor<3x4x8xf32>"),
    llm.EinsumOp: (
        f"%x: {F}, %y: tensor<8x5xf32>",
        f'  %0 = llm.einsum %x, %y {{equation = "ab,bc->ac"}} : ({F}, tensor<8x5xf32>) -> tensor<4x5xf32>',
    ),
    llm.FusedOp: (f"%x: {F}", FUSED),
    llm.YieldOp: (f"%x: {F}", FUSED),
}


def test_every_op_has_a_snippet():
    assert set(SNIPPETS) == set(llm.LLM_OPS)
    assert len(llm.LLM_OPS) == len(set(llm.LLM_OPS))
    assert {op.name for op in LLM.operations} == {op.name for op in llm.LLM_OPS}


@pytest.mark.parametrize("op", llm.LLM_OPS, ids=lambda op: op.name)
def test_custom_syntax_round_trip(op):
    args, body = SNIPPETS[op]
    module = parse(wrap(args, body))
    module.verify()
    found = [o for o in module.walk() if isinstance(o, op)]
    assert found, f"snippet for {op.name} holds no {op.name}"
    text = show(module)
    assert op.name + " " in text  # custom form, not "llm.x"(...) generic
    assert f'"{op.name}"' not in text
    again = parse(text)
    again.verify()
    assert show(again) == text
    assert again.is_structurally_equivalent(module)


@pytest.mark.parametrize("op", llm.LLM_OPS, ids=lambda op: op.name)
def test_generic_syntax_round_trip(op):
    args, body = SNIPPETS[op]
    module = parse(wrap(args, body))
    generic = show(module, generic=True)
    assert f'"{op.name}"' in generic
    back = parse(generic)
    back.verify()
    assert back.is_structurally_equivalent(module)
    assert show(back) == show(module)


def test_snippet_properties_are_read_back():
    module = parse(wrap(*SNIPPETS[llm.AttentionOp]))
    first, second = [o for o in module.walk() if isinstance(o, llm.AttentionOp)]
    assert (first.heads.value.data, first.kv_heads.value.data, first.head_dim.value.data) == (4, 2, 8)
    assert first.causal is not None and first.window.value.data == 3
    assert second.causal is None and second.window is None
    assert second.scale.value.data == 0.125
    lin = [o for o in parse(wrap(*SNIPPETS[llm.LinearOp])).walk() if isinstance(o, llm.LinearOp)]
    assert [o.bias is not None for o in lin] == [False, True, False]
    assert [o.wquant for o in lin][:2] == [None, None]
    assert lin[2].wquant == QuantAttr("int4", 4)


# --------------------------------------------------------------------------- QuantAttr


@pytest.mark.parametrize(
    ("quant", "text"),
    [
        (QuantAttr("int4", 32), "#llm.quant<int4, group = 32, scale = per_group, scale_bits = 16, symmetric = 1>"),
        (
            QuantAttr("ternary", 128, "per_channel", 8),
            "#llm.quant<ternary, group = 128, scale = per_channel, scale_bits = 8, symmetric = 1>",
        ),
        (
            QuantAttr("f16", 1, "per_tensor", 32, symmetric=False),
            "#llm.quant<f16, group = 1, scale = per_tensor, scale_bits = 32, symmetric = 0>",
        ),
    ],
)
def test_quant_attr_round_trip(quant, text):
    quant.verify()
    out = StringIO()
    Printer(stream=out).print_attribute(quant)
    assert out.getvalue() == text
    parsed = Parser(make_context(), text).parse_attribute()
    assert parsed == quant
    # And inside an op, through both syntaxes.
    body = f"  %0 = llm.linear %x, %w {{wquant = {text}}} : ({F}, tensor<16x8xf32>) -> tensor<4x16xf32>"
    module = parse(wrap(f"%x: {F}, %w: tensor<16x8xf32>", body))
    module.verify()
    assert text in show(module)
    assert parse(show(module, generic=True)).is_structurally_equivalent(module)


def test_quant_attr_defaults_and_levels():
    parsed = Parser(make_context(), "#llm.quant<int4, group = 64>").parse_attribute()
    assert parsed == QuantAttr("int4", 64, "per_group", 16, True)
    assert QuantAttr("int4", 32).levels == (-7, 7)
    assert QuantAttr("int8", 32).levels == (-127, 127)
    assert QuantAttr("int4", 32, symmetric=False).levels == (0, 15)
    assert QuantAttr("ternary", 32).levels == (-1, 1)
    assert QuantAttr("f16", 1).code_bits == 16.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("#llm.quant<int9, group = 32>", "unknown format 'int9'"),
        ("#llm.quant<fp4, group = 32>", "unknown format 'fp4'"),
        ("#llm.quant<int4, group = 0>", "group must be positive"),
        ("#llm.quant<int4, group = 32, scale = per_row>", "unknown scale layout 'per_row'"),
        ("#llm.quant<int4, group = 32, scale_bits = 12>", "scale_bits must be 8, 16 or 32"),
    ],
)
def test_quant_attr_invalid(text, fragment):
    with pytest.raises(VerifyException, match="#llm.quant") as info:
        Parser(make_context(), text).parse_attribute().verify()
    assert fragment in str(info.value)


def test_quant_attr_unknown_field_is_a_parse_error():
    from xdsl.utils.exceptions import ParseError

    with pytest.raises(ParseError, match="unknown field 'bits'"):
        Parser(make_context(), "#llm.quant<int4, bits = 4>").parse_attribute()


# --------------------------------------------------------------------------- verifier failures

INVALID = [
    pytest.param(
        f"%x: {F}, %w: tensor<16x6xf32>",
        f"  %0 = llm.linear %x, %w : ({F}, tensor<16x6xf32>) -> tensor<4x16xf32>",
        "llm.linear",
        "input inner dimension",
        id="linear-inner-dim",
    ),
    pytest.param(
        f"%x: {F}, %w: tensor<16x8xf32>, %b: tensor<8xf32>",
        f"  %0 = llm.linear %x, %w bias %b : ({F}, tensor<16x8xf32>, tensor<8xf32>) -> tensor<4x16xf32>",
        "llm.linear",
        "bias shape [8] must be [16]",
        id="linear-bias-shape",
    ),
    pytest.param(
        f"%x: {F}, %w: tensor<16x8xf32>",
        f"  %0 = llm.linear %x, %w : ({F}, tensor<16x8xf32>) -> tensor<4x8xf32>",
        "llm.linear",
        "result shape [4, 8] does not match expected [4, 16]",
        id="linear-result-shape",
    ),
    pytest.param(
        "%q: tensor<4x3x8xf32>, %k: tensor<6x2x8xf32>, %v: tensor<6x2x8xf32>, %p: tensor<4xi64>",
        "  %0 = llm.attention %q, %k, %v, %p {heads = 3 : i64, kv_heads = 2 : i64, head_dim = 8 : i64,"
        " scale = 1.0 : f64, causal}"
        " : (tensor<4x3x8xf32>, tensor<6x2x8xf32>, tensor<6x2x8xf32>, tensor<4xi64>) -> tensor<4x3x8xf32>",
        "llm.attention",
        "heads=3 must be a positive multiple of kv_heads=2",
        id="attention-heads-multiple",
    ),
    pytest.param(
        "%q: tensor<4x4x8xf32>, %k: tensor<6x2x8xf32>, %v: tensor<5x2x8xf32>, %p: tensor<4xi64>",
        "  %0 = llm.attention %q, %k, %v, %p {heads = 4 : i64, kv_heads = 2 : i64, head_dim = 8 : i64,"
        " scale = 1.0 : f64}"
        " : (tensor<4x4x8xf32>, tensor<6x2x8xf32>, tensor<5x2x8xf32>, tensor<4xi64>) -> tensor<4x4x8xf32>",
        "llm.attention",
        "key/value shapes [6, 2, 8], [5, 2, 8]",
        id="attention-kv-mismatch",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi64>",
        '  %0 = llm.rope %x, %p {theta = 1.0e+04 : f64, style = "half", rotary_dim = 5 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<4x2x8xf32>",
        "llm.rope",
        "rotary_dim 5 must be even",
        id="rope-odd-rotary-dim",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<4xf32>",
        '  %0 = llm.rope %x, %p {theta = 1.0e+04 : f64, style = "half", rotary_dim = 8 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xf32>) -> tensor<4x2x8xf32>",
        "llm.rope",
        "positions must be tensor<4xi64>",
        id="rope-positions-not-int",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi32>",
        '  %0 = llm.rope %x, %p {theta = 1.0e+04 : f64, style = "half", rotary_dim = 8 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xi32>) -> tensor<4x2x8xf32>",
        "llm.rope",
        "positions must be tensor<4xi64>, got tensor<4xi32>",
        id="rope-positions-i32",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<3xi64>",
        "  %0 = llm.kv_cache_append %x, %p {cache = \"c\"} : (tensor<4x2x8xf32>, tensor<3xi64>) -> tensor<8x2x8xf32>",
        "llm.kv_cache_append",
        "positions must be tensor<4xi64>",
        id="kv-append-positions-length",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi64>",
        '  %0 = llm.rope %x, %p {theta = 1.0e+04 : f64, style = "spiral", rotary_dim = 8 : i64}'
        " : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<4x2x8xf32>",
        "llm.rope",
        "style must be 'half' or 'interleaved'",
        id="rope-style",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.reshape %x : ({F}) -> tensor<5x6xf32>",
        "llm.reshape",
        "cannot reshape [4, 8] (32 elements) to [5, 6]",
        id="reshape-count",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>",
        "  %0 = llm.transpose %x {perm = array<i64: 0, 0, 2>} : (tensor<4x2x8xf32>) -> tensor<4x4x8xf32>",
        "llm.transpose",
        "perm [0, 0, 2] is not a permutation of 3 axes",
        id="transpose-perm",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.slice %x {{axis = 1 : i64, start = 4 : i64, end = 9 : i64}} : ({F}) -> tensor<4x5xf32>",
        "llm.slice",
        "range [4, 9) is not inside axis 1 of size 8",
        id="slice-out-of-range",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.slice %x {{axis = 1 : i64, start = 3 : i64, end = 3 : i64}} : ({F}) -> tensor<4x0xf32>",
        "llm.slice",
        "range [3, 3) is not inside",
        id="slice-empty",
    ),
    pytest.param(
        f"%x: {F}, %y: tensor<3x3xf32>",
        f"  %0 = llm.concat %x, %y {{axis = 1 : i64}} : ({F}, tensor<3x3xf32>) -> tensor<4x11xf32>",
        "llm.concat",
        "differ off axis 1",
        id="concat-mismatch",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.argmax %x {{axis = -1 : i64}} : ({F}) -> tensor<4xf32>",
        "llm.argmax",
        "result must be an i64 tensor",
        id="argmax-result-type",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.argmax %x {{axis = 2 : i64}} : ({F}) -> tensor<4xi64>",
        "llm.argmax",
        "axis 2 out of range for rank 2",
        id="argmax-axis",
    ),
    pytest.param(
        f"%x: {F}, %w: tensor<4xf32>",
        f"  %0 = llm.rmsnorm %x, %w {{eps = 1.0e-05 : f64}} : ({F}, tensor<4xf32>) -> {F}",
        "llm.rmsnorm",
        "weight shape [4] must be [8]",
        id="rmsnorm-weight",
    ),
    pytest.param(
        f"%x: {F}, %w: tensor<8xf32>",
        f"  %0 = llm.rmsnorm %x, %w {{eps = 0.0 : f64}} : ({F}, tensor<8xf32>) -> {F}",
        "llm.rmsnorm",
        "eps must be positive",
        id="rmsnorm-eps",
    ),
    pytest.param(
        "%ids: tensor<4xf32>, %t: tensor<16x8xf32>",
        "  %0 = llm.embedding %ids, %t : (tensor<4xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>",
        "llm.embedding",
        "ids must be a rank-1 integer tensor",
        id="embedding-ids",
    ),
    pytest.param(
        "%a: tensor<4x8xf32>, %b: tensor<6x3xf32>",
        "  %0 = llm.matmul %a, %b : (tensor<4x8xf32>, tensor<6x3xf32>) -> tensor<4x3xf32>",
        "llm.matmul",
        "inner dimensions differ",
        id="matmul-inner",
    ),
    pytest.param(
        f"%x: {F}, %y: tensor<3xf32>",
        f"  %0 = llm.add %x, %y : ({F}, tensor<3xf32>) -> {F}",
        "llm.add",
        "do not broadcast",
        id="add-broadcast",
    ),
    pytest.param(
        f"%x: {F}",
        "  %0 = llm.silu %x : (tensor<4x8xf32>) -> tensor<8x4xf32>",
        "llm.silu",
        "must equal input type",
        id="silu-type",
    ),
    pytest.param(
        f"%x: {F}",
        f'  %0 = llm.gelu %x {{approximate = "erf"}} : ({F}) -> {F}',
        "llm.gelu",
        "approximate must be 'none' or 'tanh'",
        id="gelu-approximate",
    ),
    pytest.param(
        "%x: tensor<4x2x8xf32>, %p: tensor<4xi64>",
        '  %0 = llm.kv_cache_append %x, %p {cache = "c"} : (tensor<4x2x8xf32>, tensor<4xi64>) -> tensor<2x2x8xf32>',
        "llm.kv_cache_append",
        "cannot hold rows",
        id="kv-append-capacity",
    ),
    pytest.param(
        f"%x: {F}",
        f"  %0 = llm.softmax %x {{axis = -3 : i64}} : ({F}) -> {F}",
        "llm.softmax",
        "axis -3 out of range",
        id="softmax-axis",
    ),
]


@pytest.mark.parametrize(("args", "body", "op_name", "fragment"), INVALID)
def test_verifier_rejects(args, body, op_name, fragment):
    module = parse(wrap(args, body))
    with pytest.raises(VerifyException) as info:
        module.verify()
    message = str(info.value)
    assert op_name in message
    assert fragment in message


def test_unknown_quant_format_on_linear_is_rejected():
    """QuantAttr verifies when it is built, so a bad format is rejected while parsing the op."""
    body = (
        f"  %0 = llm.linear %x, %w {{wquant = #llm.quant<int12, group = 4>}}"
        f" : ({F}, tensor<16x8xf32>) -> tensor<4x16xf32>"
    )
    with pytest.raises(VerifyException) as info:
        parse(wrap(f"%x: {F}, %w: tensor<16x8xf32>", body)).verify()
    assert "llm.quant" in str(info.value)
    assert "unknown format 'int12'" in str(info.value)
    with pytest.raises(VerifyException, match="unknown format 'int12'"):
        QuantAttr("int12", 4)

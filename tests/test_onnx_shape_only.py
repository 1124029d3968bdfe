"""Shape-only ONNX graphs (weights and KV cache as graph inputs, a float activation input, batched
MatMul with [H, D, dh] weights, Einsum): one `@kernel` function that `pimc estimate` prices."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

import pimc
from pimc.api import estimate_program
from pimc.dialects import llm
from pimc.errors import PimcError
from pimc.frontends import read_model
from pimc.frontends.kernels import KERNEL_FUNCTION

S, D, H, F, L = 2, 64, 4, 96, 8
DH = D // H


def decoder_layer(dtype=TP.BFLOAT16, weights_as_inputs=True, seed=0):
    """One LLaMA-like decode layer in the style of the Stream comparison graph."""
    rng = np.random.default_rng(seed)
    shapes = {"ln1": [D], "wQ": [H, D, DH], "K": [H, L, DH], "V": [H, L, DH], "wO": [H, DH, D], "ln2": [D],
              "wG": [D, F], "wU": [D, F], "wD": [F, D]}
    nodes = [
        h.make_node("LayerNormalization", ["x", "ln1"], ["xn"], axis=-1, name="ln1"),
        h.make_node("MatMul", ["xn", "wQ"], ["q"], name="proj_q"),
        h.make_node("Transpose", ["K"], ["kt"], perm=[0, 2, 1], name="kt"),
        h.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        h.make_node("Softmax", ["scores"], ["p"], axis=-1, name="softmax"),
        h.make_node("MatMul", ["p", "V"], ["ctx"], name="context"),
        h.make_node("Einsum", ["ctx", "wO"], ["o"], equation="hsd,hde->se", name="out_proj"),
        h.make_node("Add", ["x", "o"], ["h"], name="res1"),
        h.make_node("LayerNormalization", ["h", "ln2"], ["hn"], axis=-1, name="ln2"),
        h.make_node("MatMul", ["hn", "wG"], ["g"], name="gate"),
        h.make_node("MatMul", ["hn", "wU"], ["u"], name="up"),
        h.make_node("Sigmoid", ["g"], ["sg"], name="sigmoid"),
        h.make_node("Mul", ["g", "sg"], ["silu"], name="silu"),
        h.make_node("Mul", ["silu", "u"], ["m"], name="glu"),
        h.make_node("MatMul", ["m", "wD"], ["d"], name="down"),
        h.make_node("Add", ["h", "d"], ["y"], name="res2"),
    ]
    inputs = [h.make_tensor_value_info("x", dtype, [S, D])]
    inits = []
    for name, shape in shapes.items():
        if weights_as_inputs:
            inputs.append(h.make_tensor_value_info(name, dtype, shape))
        else:
            values = rng.normal(0, 0.2, shape).astype(np.float32) + (1.0 if name.startswith("ln") else 0.0)
            inits.append(onnx.numpy_helper.from_array(values.astype(np.float32), name))
    graph = h.make_graph(nodes, "layer", inputs, [h.make_tensor_value_info("y", dtype, [S, D])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)


@pytest.fixture
def shape_only(tmp_path):
    path = tmp_path / "layer.onnx"
    onnx.save(decoder_layer(), path)
    return path


def test_shape_only_graph_is_one_kernel_of_linears(shape_only):
    source = read_model(str(shape_only))
    assert source.is_kernel
    module = source.build(S, 16)
    (fn,) = module.ops
    assert fn.sym_name.data == KERNEL_FUNCTION
    linears = [op for op in fn.body.walk() if isinstance(op, llm.LinearOp)]
    assert sorted(tuple(op.weight.type.get_shape()) for op in linears) == sorted([(H * DH, D), (D, H * DH), (F, D), (F, D), (D, F)])
    assert all(op.weight.type.element_type.name == "bf16" for op in linears)  # costs count 2 bytes per weight
    assert sum(isinstance(op, llm.SiluOp) for op in fn.body.walk()) == 1
    assert sum(isinstance(op, llm.LayerNormOp) for op in fn.body.walk()) == 2


def test_estimate_prices_the_stored_weight_bytes(shape_only):
    report = pimc.estimate(str(shape_only), target="cpu-a76")
    weight_bytes = 2 * (D * H * DH + H * DH * D + 3 * D * F + 2 * H * L * DH + 2 * D)
    assert report.data["kernel"]["offchip_bytes"] >= weight_bytes
    assert report.data["kernel"]["latency_s"] > 0
    low = pimc.estimate(str(shape_only), target="cpu-a76", wbits=4)
    assert low.data["kernel"]["offchip_bytes"] < report.data["kernel"]["offchip_bytes"]
    with pytest.raises(PimcError, match="estimate"):
        pimc.compile(str(shape_only), target="cpu-a76")


def test_activation_matmuls_lower_to_the_fpga_with_their_dma(shape_only):
    # attention stays as matmuls in a shape-only graph; on the FPGA each is a kernel fed by two DMA loads
    program = estimate_program(str(shape_only), target="zcu102-meadow", wbits=8, abits=8)
    ops = list(program.module.walk())
    kernels = [op for op in ops if op.name == "fpga.kernel" and op.kernel.data == "llm.matmul"]
    assert len(kernels) == 2  # scores and context
    for kernel in kernels:
        assert all(v.owner.name == "fpga.dma_in" for v in kernel.operands)


def test_batched_weight_matmul_and_einsum_compute_what_onnxruntime_does(tmp_path):
    """The relayouts behind [H, D, dh] MatMul and Einsum weights are exact: with float32 initializers the
    kernel equals onnxruntime."""
    import onnxruntime as ort

    from pimc.execute import Executor

    path = tmp_path / "layer32.onnx"
    onnx.save(decoder_layer(TP.FLOAT, weights_as_inputs=False), path)
    source = read_model(str(path))
    module = source.build(S, 16)
    weights = source.load_weights(module)
    x = np.random.default_rng(5).normal(size=(S, D)).astype(np.float32)
    (got,) = Executor(module, weights).interpreter.call_op(KERNEL_FUNCTION, (x,))
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert float(np.abs(got - want).max()) <= 1e-5

"""Assemble the `llm` module of an ONNX causal LM: `@prefill` and `@decode` with llm_builder's interface.

    func.func @prefill(%ids: tensor<Sxi64>, %pos: tensor<Sxi64>) -> (logits [S, V], next ids [S])
    func.func @decode(%ids: tensor<1xi64>, %pos: tensor<1xi64>) -> (logits [1, V], next ids [1])

The exported graph has no KV cache: each function is the graph specialized to its sequence length
(batch 1, attention mask all ones, positions 0..S-1), raised, and then given pimc's KV cache
around every attention exactly as llm_builder does (append in both, attend over the cache in decode).
A first import at the decode context length reads what the folded masks and rotary tables mean.
"""

from __future__ import annotations

import numpy as np
import onnx
from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType, f32, i64
from xdsl.ir import Block, Region
from xdsl.rewriter import InsertPoint
from xdsl.utils.exceptions import VerifyException

from pimc.dialects import llm
from pimc.dialects.llm import i64_attr
from pimc.errors import ModelError
from pimc.frontends.onnx.emit import ONNX_NODE, POSITIONAL, Importer, Value, shape_of
from pimc.frontends.onnx.fold import Const
from pimc.frontends.onnx.raising import RaiseContext, raise_function
from pimc.frontends.onnx.reader import OnnxModel
from pimc.frontends.onnx.weights import WeightTable


def graph_inputs(model: OnnxModel) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (older exporters list initializers as inputs too)."""
    inits = set(model.initializer_names())
    return [i for i in model.graph.input if i.name not in inits]


def dims(info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in info.type.tensor_type.shape.dim]


def is_float(info: onnx.ValueInfoProto) -> bool:
    return info.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)


def ids_input(model: OnnxModel) -> onnx.ValueInfoProto | None:
    """The token-id input: named input_ids, else the first integer input."""
    ints = [i for i in graph_inputs(model) if i.type.HasField("tensor_type") and not is_float(i)]
    named = [i for i in ints if "input_ids" in i.name.lower()]
    return (named or ints or [None])[0]


def fixed_length(model: OnnxModel) -> int | None:
    info = ids_input(model)
    d = dims(info) if info is not None else []
    return d[-1] if d and isinstance(d[-1], int) and d[-1] > 0 else None


def build_kernel_module(model: OnnxModel, fp, table: WeightTable) -> ModuleOp:
    """A shape-only graph (weights and caches as graph inputs, a float activation input) as one function
    `@kernel` for cost estimates: the first float input is the argument, every other input a weight
    known by name and shape (no values; initializers keep theirs in `table`), float tensors keep the
    graph's element type (bf16 ...)."""
    from pimc.frontends.kernels import KERNEL_FUNCTION
    from pimc.frontends.onnx.emit import WeightRef, element_of_onnx

    where = str(model.path)
    inputs = graph_inputs(model)
    if not inputs or not is_float(inputs[0]):
        raise ModelError(f"{where}: a graph without token ids needs a float activation as its first input")
    shapes = []
    for info in inputs:
        d = dims(info)
        if any(not isinstance(x, int) or x <= 0 for x in d):
            raise ModelError(f"{where}: graph input '{info.name}' has shape {d}; shape-only graphs need fixed dimensions")
        shapes.append(tuple(d))
    arg_type = TensorType(element_of_onnx(inputs[0].type.tensor_type.elem_type, fp), list(shapes[0]))
    block = Block(arg_types=[arg_type])
    block.args[0].name_hint = "x"
    importer = Importer(model, 0, table, {}, {}, fp)
    importer.b = Builder(InsertPoint.at_end(block))
    bindings = {inputs[0].name: block.args[0]}
    bindings |= {info.name: WeightRef(info.name, shape) for info, shape in zip(inputs[1:], shapes[1:])}
    importer.run(block, bindings, None)
    results = []
    for out in model.graph.output:
        value = importer.env.get(out.name)
        if value is None or isinstance(value, Const) or not hasattr(value, "type"):
            raise ModelError(f"{where}: graph output '{out.name}' is not computed from the inputs")
        results.append(value)
    Builder(InsertPoint.at_end(block)).insert(func.ReturnOp(*results))
    fn = func.FuncOp(KERNEL_FUNCTION, ([arg_type], [r.type for r in results]), Region(block))
    raise_function(fn, RaiseContext({}, None, 0, {}), attention=False)
    for op in fn.body.walk():
        op.attributes.pop(ONNX_NODE, None)
    try:
        fn.verify()
    except VerifyException as e:
        raise ModelError(f"{where}: the imported kernel function does not verify ({e})") from None
    module = ModuleOp([fn])
    module.attributes["pimc.model"] = StringAttr(model.name)
    return module


class Assembler:
    """Builds the functions of one model; keeps folded constants and weights shared between them."""

    def __init__(self, model: OnnxModel):
        self.model, self.where = model, str(model.path)
        self.table = WeightTable()
        self.static_cache: dict = {}

    def build(self, seq_len: int, context: int) -> ModuleOp:
        if seq_len <= 0 or context <= 0:
            raise ModelError(f"seq-len ({seq_len}) and context ({context}) must be positive")
        if seq_len > context:
            raise ModelError(f"seq-len {seq_len} exceeds the context {context}")
        fixed = fixed_length(self.model)
        if fixed is not None and fixed != seq_len:
            raise ModelError(f"{self.where}: the graph is fixed to sequence length {fixed}; compile with --seq-len {fixed}")
        analysis_len = context if fixed is None else seq_len
        analysis, specs = self.function("analysis", analysis_len, context, {})
        prefill = analysis if analysis_len == seq_len else self.function("prefill", seq_len, context, specs)[0]
        prefill.sym_name = StringAttr("prefill")
        try:
            decode, _ = self.function("decode", 1, context, specs)
        except ModelError as e:
            if fixed is None:
                raise
            raise ModelError(f"{self.where}: the graph is fixed to sequence length {fixed}, so pimc cannot build its "
                             f"one-token decode step ({e}); export it with a dynamic sequence axis") from None
        counts = [sum(isinstance(op, llm.AttentionOp) for op in fn.body.walk()) for fn in (prefill, decode)]
        if counts[0] == 0:
            raise ModelError(f"{self.where}: no causal attention could be raised from the graph; pimc cannot build its KV-cache decode step")
        if counts[0] != counts[1]:
            raise ModelError(f"{self.where}: {counts[0]} attentions raised for prefill but {counts[1]} for decode")
        module = ModuleOp([prefill, decode])
        module.attributes["pimc.model"] = StringAttr(self.model.name)
        return module

    def function(self, phase: str, seq: int, context: int, specs: dict) -> tuple[func.FuncOp, dict]:
        in_types = [TensorType(i64, [seq]), TensorType(i64, [seq])]
        block = Block(arg_types=in_types)
        ids, pos = block.args
        ids.name_hint, pos.name_hint = "ids", "pos"
        importer = Importer(self.model, seq, self.table, self.static_cache, specs)
        importer.b = Builder(InsertPoint.at_end(block))
        bindings = self.bind_inputs(importer, seq, ids)
        importer.run(block, bindings, pos)
        logits = self.logits(importer, seq)
        b = Builder(InsertPoint.at_end(block))
        vocab = shape_of(logits)[-1]
        logits = b.insert(llm.ReshapeOp.create(operands=[logits], result_types=[TensorType(f32, [seq, vocab])])).results[0] if shape_of(logits) != (seq, vocab) else logits
        next_ids = b.insert(llm.ArgmaxOp.create(operands=[logits], result_types=[TensorType(i64, [seq])], properties={"axis": i64_attr(-1)})).results[0]
        b.insert(func.ReturnOp(logits, next_ids))
        fn = func.FuncOp(phase, (in_types, [TensorType(f32, [seq, vocab]), TensorType(i64, [seq])]), Region(block))
        ctx = RaiseContext(self.table.arrays, pos, seq, specs)
        raise_function(fn, ctx)
        found = dict(importer.found) | ctx.found
        if phase == "decode":
            self.check_positional(fn)
        self.add_kv_cache(fn, phase, context)
        for op in fn.body.walk():
            op.attributes.pop(ONNX_NODE, None)
            op.attributes.pop(POSITIONAL, None)
        try:
            fn.verify()
        except VerifyException as e:
            raise ModelError(f"{self.where}: the imported {phase} function does not verify ({e})") from None
        return fn, found

    def bind_inputs(self, im: Importer, seq: int, ids) -> dict[str, Value]:
        bindings: dict[str, Value] = {}
        token_input = ids_input(self.model)
        if token_input is None:
            raise ModelError(f"{self.where}: the graph has no integer token-id input (input_ids)")
        for info in graph_inputs(self.model):
            name, d = info.name, dims(info)
            lower = name.lower()
            if not info.type.HasField("tensor_type"):
                raise ModelError(f"{self.where}: graph input '{name}' is not a tensor")
            if info is token_input:
                if len(d) not in (1, 2) or (len(d) == 2 and isinstance(d[0], int) and d[0] not in (0, 1)):
                    raise ModelError(f"{self.where}: token input '{name}' has shape {d}; pimc binds [batch = 1, sequence]")
                bindings[name] = im.reshape(ids, (1, seq)) if len(d) == 2 else ids
            elif "attention_mask" in lower:
                dtype = bool if info.type.tensor_type.elem_type == onnx.TensorProto.BOOL else (np.float32 if is_float(info) else np.int64)
                bindings[name] = Const(np.ones((1, seq) if len(d) == 2 else (seq,), dtype=dtype), static=False, positional=True)
            elif "position_ids" in lower or "cache_position" in lower:
                positions = np.arange(seq, dtype=np.int64)
                bindings[name] = Const(positions.reshape(1, seq) if len(d) == 2 else positions, static=False, positional=True)
            elif "past" in lower and is_float(info):
                shape = [1 if i == 0 else (x if isinstance(x, int) else 0) for i, x in enumerate(d)]
                bindings[name] = Const(np.zeros(shape, np.float32), static=False)
            else:
                raise ModelError(
                    f"{self.where}: graph input '{name}' {d} is not one pimc binds (input_ids, attention_mask, position_ids, past key/values)"
                )
        return bindings

    def logits(self, im: Importer, seq: int):
        outputs = list(self.model.graph.output)
        if not outputs:
            raise ModelError(f"{self.where}: the graph has no outputs")
        out = next((o for o in outputs if o.name == "logits"), outputs[0])
        value = im.env.get(out.name)
        if value is None or isinstance(value, Const) or not hasattr(value, "type") or value.type.element_type != f32:
            raise ModelError(f"{self.where}: graph output '{out.name}' is not float logits computed from the tokens")
        s = shape_of(value)
        if not s or np.prod(s) != seq * s[-1]:
            raise ModelError(f"{self.where}: graph output '{out.name}' has shape {list(s)}, not logits for each of {seq} tokens")
        return value

    def check_positional(self, fn: func.FuncOp) -> None:
        for op in fn.body.walk():
            if isinstance(op, llm.WeightOp) and POSITIONAL in op.attributes and op.result.uses:
                user = next(iter(op.result.uses)).operation
                node = user.attributes.get(ONNX_NODE)
                raise ModelError(
                    f"{self.where}: node '{node.data if node else user.name}' ({user.name}) uses a value computed from the "
                    "token positions that pimc could not raise into RoPE, attention or a position embedding; "
                    "its decode step would be wrong"
                )

    def add_kv_cache(self, fn: func.FuncOp, phase: str, context: int) -> None:
        """kv_cache_append of every attention's keys and values; decode attends over the caches."""
        pos = fn.body.block.args[1]
        attentions = [op for op in fn.body.walk() if isinstance(op, llm.AttentionOp)]
        for layer, op in enumerate(attentions):
            b = Builder(InsertPoint.before(op))
            caches = []
            for which, value in (("k", op.key), ("v", op.value)):
                _, kv, d = shape_of(value)
                append = llm.KVCacheAppendOp.create(
                    operands=[value, pos], result_types=[TensorType(f32, [context, kv, d])],
                    properties={"cache": StringAttr(f"layers.{layer}.{which}")},
                )
                caches.append(b.insert(append).results[0])
            if phase == "decode":
                op.operands = [op.query, caches[0], caches[1], op.positions]

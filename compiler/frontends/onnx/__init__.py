"""ONNX frontend: causal LMs exported by `torch.onnx.export` (both exporters) become `llm` modules.

    reader.py    load + validate (external data, checker, local functions inlined)
    fold.py      constant folding with the ONNX reference ops (shape arithmetic, masks, weight unpacking)
    emit.py      ONNX node → `llm` ops for one sequence length (generic where nothing better is known)
    raising.py   patterns proved by numbers: norms, activations, RoPE, attention, linear bias
    assemble.py  `@prefill` / `@decode` with pimc's KV cache, as llm_builder emits them
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from pimc.errors import ModelError, PimcError
from pimc.frontends import ModelSource
from pimc.frontends.onnx.assemble import Assembler, build_kernel_module, graph_inputs, ids_input
from pimc.frontends.onnx.reader import OnnxModel, first_line, load_onnx
from pimc.frontends.onnx.weights import WeightTable
from pimc.frontends.weights import WeightStore, weight_shapes


@dataclass(frozen=True)
class OnnxModelSource(ModelSource):
    """An ONNX file as a pimc model: weights are the graph's initializers (and external data)."""

    path: Path = Path()
    _state: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def is_kernel(self) -> bool:
        """A shape-only graph (no token-id input): one `@kernel` function, for `pimc estimate` only."""
        return ids_input(self.model) is None

    @property
    def has_checkpoint(self) -> bool:
        return True

    @property
    def model(self) -> OnnxModel:
        if "model" not in self._state:
            self._state["model"] = guarded(self.path, lambda: load_onnx(self.path))
        return self._state["model"]

    def build(self, seq_len: int, context: int) -> ModuleOp:
        if self.is_kernel:
            table = self._state["table"] = WeightTable()
            return guarded(self.path, lambda: build_kernel_module(self.model, graph_float_type(self.model), table))
        assembler = Assembler(self.model)
        module = guarded(self.path, lambda: assembler.build(seq_len, context))
        self._state["table"] = assembler.table
        return module

    def load_weights(self, module: ModuleOp, weights: str = "auto", seed: int = 0) -> WeightStore:
        if weights == "random":
            raise ModelError(f"{self.spec}: an ONNX model carries its own weights (use --weights auto)")
        if weights not in ("auto", "checkpoint"):
            raise ModelError(f"unknown weights source '{weights}' (auto, checkpoint, random)")
        table = self._state.get("table")
        if table is None:
            raise ModelError(f"{self.spec}: build the module before loading its weights")
        shapes = weight_shapes(module)
        missing = [n for n in shapes if n not in table.arrays]
        if missing:
            raise ModelError(f"{self.spec}: weight '{missing[0]}' is a graph input without values (a shape-only model: use pimc estimate)")
        return table.subset(shapes)


def graph_float_type(model: OnnxModel):
    """The float type a shape-only graph's inputs declare (its costs count those bytes); f32 otherwise."""
    import onnx
    from xdsl.dialects.builtin import bf16, f16, f32

    types = {onnx.TensorProto.BFLOAT16: bf16, onnx.TensorProto.FLOAT16: f16}
    declared = [i.type.tensor_type.elem_type for i in graph_inputs(model) if i.type.HasField("tensor_type")]
    return next((types[t] for t in declared if t in types), f32)


def guarded(path: Path, work):
    """Run an import step; any failure other than a pimc error becomes one line naming the file."""
    try:
        return work()
    except PimcError:
        raise
    except RecursionError:
        raise ModelError(f"{path}: the graph nests too deeply to import") from None
    except Exception as e:
        raise ModelError(f"{path}: cannot import ({type(e).__name__}: {first_line(e)})") from None


def read_onnx(spec: str) -> OnnxModelSource:
    path = Path(spec)
    if not path.is_file():
        raise ModelError(f"{spec}: no such file")
    source = OnnxModelSource(None, spec, path.parent, path)
    source.model  # noqa: B018  read and validate now: errors belong to reading the model
    return source


__all__ = ["OnnxModelSource", "read_onnx"]

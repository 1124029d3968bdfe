"""The mapper offers an op only to devices whose kind supports it; no capable device is a clear error."""

import dataclasses

import pytest

from pimc.errors import PimcError
from pimc.frontends import build_module, read_model
from pimc.mapping.from_ir import build_problem
from pimc.targets import kinds, load_target


def _prefill(module):
    return next(op for op in module.ops if op.sym_name.data == "prefill")


def test_ops_a_kind_does_not_support_get_no_cost(monkeypatch):
    cpu = kinds.DEVICE_KINDS["cpu"]
    only_linear = dataclasses.replace(cpu, supports=lambda device, work: work.op == "llm.linear")
    monkeypatch.setitem(kinds.DEVICE_KINDS, "cpu", only_linear)
    module = build_module(read_model("tiny-llama").config, 4, 8)
    with pytest.raises(PimcError, match="no device can run llm.embedding"):
        build_problem(_prefill(module), load_target("cpu-a76"))


def test_linear_work_carries_its_dimensions():
    from pimc.dialects import llm
    from pimc.dialects.llm_work import op_work

    module = build_module(read_model("tiny-llama").config, 4, 8)
    linear = next(op for op in _prefill(module).body.ops if isinstance(op, llm.LinearOp))
    work = op_work(linear)
    assert work.dims == {"rows": 4, "n": 128, "k": 128}
    assert work.flops == 2 * 4 * 128 * 128
    assert work.weight_bits == 32.0

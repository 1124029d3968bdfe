"""The generated references (docs/dialects.md, docs/targets.md) equal what the code generates now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["dialects.md", "targets.md"])
def test_committed_docs_are_fresh(generate, name):
    fresh = generate.OUTPUTS[name]()
    assert fresh == generate.OUTPUTS[name](), "generation is not deterministic"
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == fresh, f"docs/{name} is stale: run `python docs/generate.py` and commit the result"


def test_every_op_and_device_field_is_documented(generate):
    from pimc.ir import DIALECTS
    from pimc.targets import DEVICE_KINDS

    dialects = (DOCS / "dialects.md").read_text(encoding="utf-8")
    for dialect in DIALECTS:
        for op in dialect.operations:
            assert f"### `{op.name}`" in dialects
    targets = (DOCS / "targets.md").read_text(encoding="utf-8")
    for kind, entry in DEVICE_KINDS.items():
        section = targets.split(f"## Device kind `{kind}`")[1].split("\n## ")[0]
        for field in set(entry.schema.model_fields) - {"name", "memory", "description"}:
            assert f"| `{field}` |" in section, (kind, field)
    assert "| `offchip_gbps` | number | Gbit/s | > 0 | required |" in targets


def test_constraint_text_reads_like_a_type(generate):
    from pimc.dialects.llm import AttentionOp, LinearOp

    ops = {n: generate.constraint_text(p.constr) for n, p in AttentionOp.get_irdl_definition().properties.items()}
    assert ops["heads"] == "IntegerAttr<i64>" and ops["scale"] == "FloatAttr" and ops["causal"] == "UnitAttr"
    bias = dict(LinearOp.get_irdl_definition().operands)["bias"]
    assert generate.arity(bias) == "optional" and generate.constraint_text(bias.constr) == "TensorType"


def test_check_mode_names_a_stale_file(generate, tmp_path):
    (tmp_path / "dialects.md").write_text(generate.dialects_markdown(), encoding="utf-8")
    (tmp_path / "targets.md").write_text("old\n", encoding="utf-8")
    assert generate.stale_files(tmp_path) == ["targets.md"]


README = DOCS.parent / "README.md"


def test_readme_target_example_is_the_shipped_file_and_loads():
    from pimc.targets import load_target

    readme = README.read_text(encoding="utf-8")
    block = readme.split("```toml\nname = \"my-soc\"", 1)[1].split("```", 1)[0]
    shipped = (DOCS.parent / "examples" / "golden_test" / "my-soc.toml").read_text(encoding="utf-8")
    assert shipped.endswith('name = "my-soc"' + block)
    assert {d.kind for d in load_target(DOCS.parent / "examples" / "golden_test" / "my-soc.toml").devices} == {"cpu", "systolic"}


def test_readme_names_every_pass_lowering_kind_and_example():
    from pimc.passes import all_passes
    from pimc.pipeline import LOWERINGS
    from pimc.targets import DEVICE_KINDS

    readme = README.read_text(encoding="utf-8")
    for name in all_passes():
        assert f"`{name}`" in readme, f"README does not mention the pass {name}"
    for kind, lowering in LOWERINGS.items():
        assert f"`{lowering.name}`" in readme and f"`{kind}`" in readme
    assert set(LOWERINGS) == set(DEVICE_KINDS)
    for script in sorted((DOCS.parent / "examples").glob("*.py")):
        assert f"examples/{script.name}" in readme, f"README does not list {script.name}"

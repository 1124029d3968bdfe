"""Target loading: presets, round trip, overrides, and one-line errors that name file and field."""

from pathlib import Path

import pytest

from pimc.errors import TargetError
from pimc.targets import (
    DEVICE_KINDS,
    CpuDevice,
    Target,
    list_presets,
    load_target,
    target_to_toml,
)

PRESETS = ["cpu-a76", "cpu-i7-9700k"]

GOOD = """\
name = "t"
[[devices]]
name = "cpu"
kind = "cpu"
memory = "dram"
cores = 2
freq_ghz = 1.0
simd_ops_per_cycle_per_core = { fp32 = 8.0, int8 = 32.0 }
energy_pj_per_op = { fp32 = 10.0, int8 = 2.0 }
static_power_w = 1.0
op_overhead_s = 1e-6

[[memories]]
name = "dram"
kind = "dram"
capacity_bytes = 1024
bandwidth_gb_per_s = 10.0
energy_pj_per_byte = 20.0
"""


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(TargetError) as info:
        load_target(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_list_presets():
    presets = list_presets()
    assert set(PRESETS) <= set(presets) and presets == sorted(presets)  # other kinds add presets


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_expected_shape(name):
    t = load_target(name)
    assert t.name == name
    assert isinstance(t.device("cpu"), CpuDevice)
    assert t.memory_of("cpu").name == "dram"
    assert t.memory_of(t.device("cpu")) is t.memory("dram")


def test_preset_peaks():
    a76 = load_target("cpu-a76").device("cpu")
    assert a76.peak_ops_per_s(32) == pytest.approx(4 * 2.4e9 * 16, rel=1e-12)
    assert a76.peak_ops_per_s(8) == pytest.approx(4 * 2.4e9 * 64, rel=1e-12)
    assert a76.peak_ops_per_s(4) == a76.peak_ops_per_s(8)
    i7 = load_target("cpu-i7-9700k")
    assert i7.device("cpu").peak_ops_per_s(16) == pytest.approx(8 * 3.6e9 * 32, rel=1e-12)
    assert i7.memory("dram").bandwidth_gb_per_s == 38.4


@pytest.mark.parametrize("name", PRESETS)
def test_round_trip(tmp_path, name):
    t = load_target(name)
    text = target_to_toml(t)
    assert text == target_to_toml(t)  # deterministic
    again = load_target(write(tmp_path, text))
    assert again == t
    assert target_to_toml(again) == text


def test_load_path_as_str_and_path(tmp_path):
    path = write(tmp_path, GOOD)
    assert load_target(path) == load_target(str(path))
    assert load_target(path).links == []


def test_override_changes_peak():
    base = load_target("cpu-a76")
    two = load_target("cpu-a76", ["cpu.cores=2"])
    assert two.device("cpu").cores == 2
    assert two.device("cpu").peak_ops_per_s(32) == pytest.approx(
        base.device("cpu").peak_ops_per_s(32) / 2, rel=1e-12
    )


def test_override_memory_nested_and_defaulted_fields():
    t = load_target(
        "cpu-i7-9700k",
        ["dram.bandwidth_gb_per_s=25.6", "cpu.simd_ops_per_cycle_per_core.int8=128",
         "dram.latency_ns = 0", 'cpu.description="x"'],
    )
    assert t.memory("dram").bandwidth_gb_per_s == 25.6
    assert t.device("cpu").simd_ops_per_cycle_per_core.int8 == 128.0
    assert t.memory("dram").latency_ns == 0.0
    assert t.device("cpu").description == "x"


def test_unknown_preset():
    msg = error_of("foo")
    assert msg == f"unknown target 'foo' (presets: {', '.join(list_presets())})"
    assert "cpu-a76, cpu-i7-9700k" in msg


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    assert error_of(missing) == f"{missing}: target file not found"
    assert "target file not found" in error_of(str(missing))


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace("cores = 2", "cores = = 2"), "bad.toml")
    msg = error_of(path)
    assert msg.startswith(f"{path}: invalid TOML:")
    assert "line 6" in msg


def test_wrong_type_names_file_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("cores = 2", 'cores = "two"'), "wrongtype.toml")
    msg = error_of(path)
    assert msg.startswith(f"{path}: devices['cpu'].cores: Input should be a valid integer")
    assert "'two'" in msg


def test_out_of_range_value(tmp_path):
    path = write(tmp_path, GOOD.replace("freq_ghz = 1.0", "freq_ghz = 0.0"), "cpu-x.toml")
    assert error_of(path) == (
        f"{path}: devices['cpu'].freq_ghz: Input should be greater than 0 (got 0.0)"
    )


def test_extra_unknown_field(tmp_path):
    path = write(tmp_path, GOOD.replace("cores = 2", "cores = 2\ncorez = 3"))
    assert error_of(path) == f"{path}: devices['cpu'].corez: unknown field"


def test_missing_field_and_unknown_kind(tmp_path):
    path = write(tmp_path, GOOD.replace("cores = 2\n", ""))
    assert error_of(path) == f"{path}: devices['cpu'].cores: missing required field"
    path = write(tmp_path, GOOD.replace("static_power_w = 1.0\n", ""))
    assert error_of(path) == f"{path}: devices['cpu']: give busy_power_w, or both energy_pj_per_op and static_power_w"
    path = write(tmp_path, GOOD.replace('kind = "cpu"', 'kind = "gpu"'))
    assert error_of(path) == f"{path}: devices['cpu']: unknown device kind 'gpu' (known: {', '.join(sorted(DEVICE_KINDS))})"


def test_device_referencing_missing_memory(tmp_path):
    path = write(tmp_path, GOOD.replace('memory = "dram"', 'memory = "sram"'))
    assert error_of(path) == f"{path}: devices[0].memory: no memory named 'sram' (memories: dram)"


def test_duplicate_names(tmp_path):
    path = write(tmp_path, GOOD.replace('name = "dram"', 'name = "cpu"').replace(
        'memory = "dram"', 'memory = "cpu"'))
    assert error_of(path) == (
        f"{path}: memories[0].name: duplicate name 'cpu' (already used by devices[0])"
    )


def test_link_endpoints_checked(tmp_path):
    link = '\n[[links]]\nname = "bus"\nendpoints = ["cpu", "{}"]\nbandwidth_gb_per_s = 1.0\n' \
           "latency_ns = 0.0\nenergy_pj_per_byte = 1.0\n"
    assert load_target(write(tmp_path, GOOD + link.format("dram"))).links[0].endpoints == [
        "cpu", "dram"]
    msg = error_of(write(tmp_path, GOOD + link.format("sram")))
    assert msg.endswith("links[0].endpoints[1]: no device or memory named 'sram' (names: cpu, dram)")


def test_several_errors_on_one_line(tmp_path):
    text = GOOD.replace("cores = 2", "cores = -1").replace("freq_ghz = 1.0", "freq_ghz = -1.0")
    msg = error_of(write(tmp_path, text))
    assert "devices['cpu'].cores: Input should be greater than 0 (got -1)" in msg
    assert "; devices['cpu'].freq_ghz:" in msg


def test_bad_overrides():
    assert error_of("cpu-a76", ["gpu.cores=8"]) == (
        "--set 'gpu.cores=8': cpu-a76.toml has no device, memory or link named 'gpu' "
        "(names: cpu, dram)"
    )
    msg = error_of("cpu-a76", ["cpu.corez=8"])
    assert msg.startswith("--set 'cpu.corez=8': device 'cpu' has no field 'corez' (fields: ")
    msg = error_of("cpu-a76", ["cpu.energy_pj_per_op.fp16=1"])
    assert "device 'cpu.energy_pj_per_op' has no field 'fp16' (fields: fp32, int8)" in msg
    assert "expected DEVICE.FIELD=VALUE" in error_of("cpu-a76", ["cpu.cores"])
    assert "expected DEVICE.FIELD=VALUE" in error_of("cpu-a76", ["cores=8"])


def test_override_with_invalid_value_is_validated():
    msg = error_of("cpu-a76", ["cpu.cores=0"])
    assert msg == (
        "cpu-a76.toml (with --set cpu.cores=0): devices['cpu'].cores: "
        "Input should be greater than 0 (got 0)"
    )
    assert "Input should be a valid integer (got 'eight')" in error_of("cpu-a76", ["cpu.cores=eight"])


def test_registry_and_schema_agree():
    assert "cpu" in DEVICE_KINDS  # other kinds register beside it
    assert DEVICE_KINDS["cpu"].schema is CpuDevice
    t = load_target("cpu-a76")
    assert isinstance(Target.model_validate(t.model_dump()), Target)


def test_device_lookup_errors():
    t = load_target("cpu-a76")
    with pytest.raises(TargetError, match=r"has no device 'npu' \(devices: cpu\)"):
        t.device("npu")
    with pytest.raises(TargetError, match=r"has no memory 'sram' \(memories: dram\)"):
        t.memory("sram")

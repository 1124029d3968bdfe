"""Target descriptions: schema, presets, loading with overrides, and per-kind cost models.

    from pimc.targets import load_target, op_cost
    target = load_target("cpu-a76", ["cpu.cores=2"])
    cost = op_cost(target, "cpu", work)
"""

from pimc.targets.cost import Cost
from pimc.targets.cpu import CpuDevice
from pimc.targets.device import DeviceBase, DeviceKind, PerWidth, width_key
from pimc.targets.kinds import DEVICE_KINDS, Device, can_run, device_kind, op_cost
from pimc.targets.load import (
    PRESETS_DIR,
    format_validation_error,
    list_presets,
    load_target,
    target_to_toml,
)
from pimc.targets.schema import Link, Memory, Target

__all__ = [
    "DEVICE_KINDS",
    "PRESETS_DIR",
    "Cost",
    "CpuDevice",
    "Device",
    "DeviceBase",
    "DeviceKind",
    "Link",
    "Memory",
    "PerWidth",
    "Target",
    "can_run",
    "device_kind",
    "format_validation_error",
    "list_presets",
    "load_target",
    "op_cost",
    "target_to_toml",
    "width_key",
]

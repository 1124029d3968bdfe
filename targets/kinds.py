"""The registry of device kinds and the one entry point to their cost models.

Adding a kind: write `targets/<kind>/` exporting `KIND = DeviceKind(...)` and add it to `_KINDS`.
`Device` (the discriminated union on `kind` that `Target.devices` uses) is built from this list,
so `Target` never changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from pimc.dialects.work import Work
from pimc.errors import TargetError
from pimc.targets import cpu
from pimc.targets import cim
from pimc.targets import systolic
from pimc.targets import fpga
from pimc.targets import dram_pud
from pimc.targets.cost import Cost
from pimc.targets.device import DeviceKind

if TYPE_CHECKING:
    from pimc.targets.schema import Target

_KINDS: tuple[DeviceKind, ...] = (
    cpu.KIND,
    cim.KIND,
    systolic.KIND,
    fpga.KIND,
    dram_pud.KIND,
)

DEVICE_KINDS: dict[str, DeviceKind] = {k.kind: k for k in _KINDS}

for _k in _KINDS:  # a kind's Literal tag must equal its registry key, or parsing would misroute
    _tag = _k.schema.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
    assert _tag == (_k.kind,), f"{_k.schema.__name__}.kind is {_tag}, registry says {_k.kind!r}"

Device = Annotated[Union[tuple(k.schema for k in _KINDS)], Field(discriminator="kind")]  # noqa: UP007
"""Any registered device, chosen by its `kind` field."""


def device_kind(kind: str) -> DeviceKind:
    """The registered kind called `kind`, or a TargetError naming the known kinds."""
    try:
        return DEVICE_KINDS[kind]
    except KeyError:
        raise TargetError(
            f"unknown device kind {kind!r} (known: {', '.join(sorted(DEVICE_KINDS))})"
        ) from None


def can_run(target: Target, device_name: str, work: Work) -> bool:
    """Whether the device `device_name` of `target` can execute `work` at all."""
    device = target.device(device_name)
    return device_kind(device.kind).supports(device, work)


def op_cost(target: Target, device_name: str, work: Work) -> Cost:
    """Cost of `work` on the device `device_name` of `target`, by that device kind's model."""
    device = target.device(device_name)
    kind = device_kind(device.kind)
    if kind.target_cost is not None:
        return kind.target_cost(target, device, work)
    return kind.cost(device, target.memory_of(device), work)

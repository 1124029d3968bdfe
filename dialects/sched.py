"""What every device-dialect op that runs on a device carries: where, when and at what cost.

Lowerings copy the mapper's `pimc.sched` placement into these properties (`sched_properties`);
the simulator's timeline reads them back from any op with the `Scheduled` trait, whatever its
dialect, so a new device dialect only declares the properties and the trait.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import I64, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Attribute, Operation
from xdsl.irdl import IRDLOperation, ParsePropInAttrDict, prop_def, traits_def
from xdsl.traits import OpTrait
from xdsl.utils.exceptions import VerifyException

SCHED_FIELDS = ("device", "slot", "start_s", "latency_s", "energy_j", "offchip_bytes")


@dataclass(frozen=True)
class Scheduled(OpTrait):
    """The op has the properties of SCHED_FIELDS: a non-negative slot, start and cost on a named device."""

    def verify(self, op: Operation) -> None:
        for name in SCHED_FIELDS:
            if name not in op.properties:
                raise VerifyException(f"{op.name}: missing schedule property '{name}'")
        for name in SCHED_FIELDS[1:]:
            if _number(op.properties[name]) < 0:
                raise VerifyException(f"{op.name} (slot {_number(op.properties['slot'])}): {name} is negative")


class ScheduledOp(IRDLOperation):
    """Base of every device-dialect op that runs on a device: the SCHED_FIELDS properties and the trait.

    Subclasses add their own operands and properties; properties print in the attribute dictionary.
    """

    irdl_options = (ParsePropInAttrDict(),)
    device = prop_def(StringAttr)
    slot = prop_def(IntegerAttr[I64])
    start_s = prop_def(FloatAttr)
    latency_s = prop_def(FloatAttr)
    energy_j = prop_def(FloatAttr)
    offchip_bytes = prop_def(FloatAttr)
    traits = traits_def(Scheduled())


@dataclass(frozen=True)
class Placement:
    device: str
    slot: int
    start_s: float
    latency_s: float
    energy_j: float
    offchip_bytes: float


def _number(attr: Attribute) -> float:
    assert isinstance(attr, IntegerAttr | FloatAttr)
    return attr.value.data


def placement_of(op: Operation) -> Placement:
    p = op.properties
    device = p["device"]
    assert isinstance(device, StringAttr)
    return Placement(device.data, int(_number(p["slot"])), *(float(_number(p[n])) for n in SCHED_FIELDS[2:]))


def sched_properties(place: DictionaryAttr) -> dict[str, Attribute]:
    """The schedule properties of a lowered op, from the mapper's `pimc.sched` attribute."""
    return {name: place.data[name] for name in SCHED_FIELDS}

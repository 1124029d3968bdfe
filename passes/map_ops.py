"""`map`: place and schedule every op on a target (list scheduler + checker), as `pimc.sched` attributes."""

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pimc.mapping.from_ir import annotate, map_module
from pimc.targets import load_target


@dataclass(frozen=True)
class MapOpsPass(ModulePass):
    name = "map"

    target: str = "cpu-a76"
    """A target preset name or .toml path."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = load_target(self.target)
        annotate(map_module(op, target), target)

"""Mapping stage: assign ops to devices, time them, place tensors in memories (see DESIGN.md)."""

from pimc.mapping.checker import check_schedule, schedule_violations
from pimc.mapping.list_scheduler import list_schedule, upward_ranks
from pimc.mapping.mapper import SOLVERS, MapOptions, baseline, map_problem
from pimc.mapping.objective import Objective
from pimc.mapping.problem import Cost, LinkCost, MappingProblem, OpNode, Tensor, TensorKind
from pimc.mapping.schedule import OpSlot, Residency, Schedule, Transfer

__all__ = [
    "Cost", "LinkCost", "MappingProblem", "OpNode", "Tensor", "TensorKind",
    "OpSlot", "Residency", "Schedule", "Transfer",
    "list_schedule", "upward_ranks", "SOLVERS", "MapOptions", "Objective", "baseline", "map_problem",
    "check_schedule", "schedule_violations",
]

"""pimc's passes, by name, for `pimc opt --passes` and pipelines (xDSL's generic ones included)."""

from collections.abc import Callable

from xdsl.passes import ModulePass
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from pimc.passes.cim_residency import CimResidencyPass
from pimc.passes.cim_select import CimSelectPass
from pimc.passes.convert_llm_to_cim import ConvertLlmToCimPass, LowerCimPass
from pimc.passes.convert_llm_to_cpu import ConvertLlmToCpuPass
from pimc.passes.convert_llm_to_fpga import ConvertLlmToFpgaPass
from pimc.passes.convert_llm_to_systolic import ConvertLlmToSystolicPass
from pimc.passes.crossbar_tile import CrossbarTilePass
from pimc.passes.fuse import FusePass
from pimc.passes.map_ops import MapOpsPass
from pimc.passes.pack_weights import PackWeightsPass
from pimc.passes.quantize import QuantizePass
from pimc.passes.tphs import TphsPass
from pimc.passes.convert_llm_to_pud import ConvertLlmToPudPass, LowerPudPass
from pimc.passes.pud_layout import PudLayoutPass
from pimc.passes.pud_quantize import PudQuantizePass


def all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    passes = [CanonicalizePass, CommonSubexpressionElimination, DeadCodeElimination, QuantizePass, FusePass, MapOpsPass, ConvertLlmToCpuPass]
    passes += [TphsPass, PackWeightsPass, ConvertLlmToFpgaPass]
    passes += [CrossbarTilePass, CimSelectPass, CimResidencyPass, ConvertLlmToCimPass, LowerCimPass, ConvertLlmToSystolicPass]
    passes += [PudQuantizePass, PudLayoutPass, ConvertLlmToPudPass, LowerPudPass]
    return {p.name: (lambda p=p: p) for p in passes}


__all__ = ["ConvertLlmToCpuPass", "MapOpsPass", "QuantizePass", "all_passes"]

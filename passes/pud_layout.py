"""`pud-layout`: place every weight of a linear mapped to a DRAM-PUD device (MVDRAM layout).

Horizontal bit-planes: row (j, i) of a subarray holds bit i of the q-bit fields of input j for the
outputs of one chunk of reliable columns, its complement row beside it (dual track); inputs are
cut into blocks of <= 128 (or fewer, when 2q rows per input and the scratch rows the reduction needs
would not fit the subarray), keeping quantization groups whole; outputs into chunks of reliable
columns. Task t of a weight runs on global slot t (ranks interleaved first, then banks: the
placement the cost model assumed), in the first subarray of that bank with room: tasks of other
weights share a subarray side by side in its columns (they never run at the same time), under one
scratch area sized for the largest of them. A weight is placed once however many functions use it.
Weights that do not fit are a clear error. The layout is recorded on each linear as `pud.layout`
and a summary per device on the module as `pud.placement`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp
from xdsl.passes import ModulePass

from pimc.dialects import llm
from pimc.dialects.llm import i64_attr
from pimc.dialects.llm_work import op_work
from pimc.dialects.pud import LayoutAttr
from pimc.errors import PimcError
from pimc.passes.module_target import module_target, placed_on
from pimc.targets.dram_pud import PudDevice, supports
from pimc.targets.dram_pud.cost import work_geometry
from pimc.targets.dram_pud.mechanism import GemvGeometry, task_bank

LAYOUT_ATTR = "pud.layout"
PLACEMENT_ATTR = "pud.placement"


@dataclass
class _Subarray:
    columns: int = 0
    rows: int = 0
    scratch: int = 0


@dataclass
class Allocator:
    """Free space of one device: per (rank, bank), its subarrays in use."""

    device: PudDevice
    banks: dict[tuple[int, int], list[_Subarray]] = field(default_factory=dict)
    weights: int = 0

    def place(self, name: str, geo: GemvGeometry) -> tuple[list[int], list[int]]:
        d = self.device
        subarrays, offsets = [], []
        t = 0
        for _ in geo.blocks:
            for width in geo.chunks:
                bank = self.banks.setdefault(task_bank(d, t), [])
                s = self._fit(bank, width, geo)
                if s is None:
                    raise PimcError(
                        f"device '{d.name}': weight '{name}' does not fit: bank {task_bank(d, t)} has no subarray with "
                        f"{width} free reliable columns and {geo.rows} + {geo.scratch} rows; {self.used()} of "
                        f"{d.banks * d.subarrays_per_bank} subarrays already hold {self.weights} weights"
                    )
                sub = bank[s]
                offsets.append(sub.columns)
                subarrays.append(s)
                sub.columns += width
                sub.rows, sub.scratch = max(sub.rows, geo.rows), max(sub.scratch, geo.scratch)
                t += 1
        self.weights += 1
        return subarrays, offsets

    def _fit(self, bank: list[_Subarray], width: int, geo: GemvGeometry) -> int | None:
        d = self.device
        for s, sub in enumerate(bank):
            rows = max(sub.rows, geo.rows) + max(sub.scratch, geo.scratch)
            if sub.columns + width <= d.reliable_columns and rows <= d.rows_per_subarray:
                return s
        if len(bank) < d.subarrays_per_bank:
            bank.append(_Subarray())
            return len(bank) - 1
        return None

    def used(self) -> int:
        return sum(len(b) for b in self.banks.values())


def make_layout(device: PudDevice, geo: GemvGeometry, subarrays: list[int], offsets: list[int]) -> LayoutAttr:
    return LayoutAttr(
        device.name, subarrays, offsets, q=geo.q, p=geo.p, group=geo.qgroup, inputs=geo.inputs,
        columns=device.reliable_columns, rows=device.rows_per_subarray, max_inputs=device.max_inputs_per_subarray,
        ranks=device.ranks, banks=device.banks, subarrays_per_bank=device.subarrays_per_bank,
        scratch=geo.scratch, first_slot=0,
    )


@dataclass(frozen=True)
class PudLayoutPass(ModulePass):
    name = "pud-layout"

    target: str = ""
    """A target preset name or .toml path (default: the target recorded on the module)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.target, self.name)
        allocators: dict[str, Allocator] = {}
        placed: dict[tuple[str, str], LayoutAttr] = {}
        for linear in op.walk():
            if not isinstance(linear, llm.LinearOp):
                continue
            name = placed_on(linear, "dram_pud")
            if name is None:
                continue
            device = target.device(name)
            work = op_work(linear)
            if not supports(device, work):
                raise PimcError(f"pud-layout: {linear.name} mapped to '{name}' has {work.weight_bits:g}-bit weights and "
                                f"{work.act_bits:g}-bit inputs; the device needs integer codes (quantize first)")
            owner = linear.weight.owner
            if not isinstance(owner, llm.WeightOp):
                raise PimcError(f"pud-layout: the weight of a linear on '{name}' must be an llm.weight (a stored matrix)")
            key = (name, owner.properties["name"].data)
            geo = work_geometry(device, work)
            layout = placed.get(key)
            if layout is None or layout.value("q") != geo.q or layout.value("p") < geo.p:
                alloc = allocators.setdefault(name, Allocator(device))
                layout = make_layout(device, geo, *alloc.place(key[1], geo))
                placed[key] = layout
            linear.attributes[LAYOUT_ATTR] = layout
        summary = {
            name: DictionaryAttr({
                "weights": i64_attr(a.weights),
                "subarrays_used": i64_attr(a.used()),
                "subarrays_available": i64_attr(a.device.banks * a.device.subarrays_per_bank),
            })
            for name, a in sorted(allocators.items())
        }
        if summary:
            op.attributes[PLACEMENT_ATTR] = DictionaryAttr(summary)

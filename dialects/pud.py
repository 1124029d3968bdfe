"""The `pud` dialect: GeMVs computed inside commodity DRAM (MVDRAM), at operator granularity.

A linear mapped to a DRAM-PUD device becomes four ops; DRAM commands, subarray tasks and bit
positions stay attributes and simulator internals (`pud_semantics.py`):

- `pud.place`: the weight as the device stores it (data, not computation): q-bit fields in
  horizontal bit-planes with their complements, cut into subarray tasks as `#pud.layout` says.
- `pud.encode` (host phase): the input rows become p-bit two's-complement codes and one scale per
  row (`aquant`); their bits become the on-the-fly command stream.
- `pud.gemv` (in DRAM): per quantization group g, D[r, g, m] = sum_{j in g} a[r, j] u[m, j]: selective
  RowCopies of the weight rows whose activation bit is set, MAJ-based full adders reducing them,
  and the read-out of the result rows.
- `pud.aggregate` (host phase): y = ascale * sum_g scale[m, g] (mult D - offset A[g]) (+ bias), with
  A[g] the sum of the codes of group g.

The three computing ops carry the `Scheduled` placement of the linear they come from (device, slot,
start, cost split by phase); `host` names the cpu device that runs the host phases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.dialects.builtin import (
    I64,
    DenseArrayBase,
    IntAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    param_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from pimc.dialects.llm import QuantAttr, tensor_shape
from pimc.dialects.sched import ScheduledOp
from pimc.targets.dram_pud.mechanism import split_inputs

_INT_FIELDS = ("q", "p", "group", "inputs", "columns", "rows", "max_inputs", "ranks", "banks",
               "subarrays_per_bank", "scratch", "first_slot")


@irdl_attr_definition
class LayoutAttr(ParametrizedAttribute):
    """Where a [N, K] weight of q-bit fields sits in a PUD device, and the device numbers it was made for.

    Inputs are cut into blocks of <= `inputs` (whole quantization groups of `group` when smaller),
    outputs into chunks of <= `columns` reliable columns; task t = block * chunks + chunk runs in
    subarray `subarrays[t]` of bank `(first_slot + t) // ranks % banks_per_rank` of rank
    `(first_slot + t) % ranks`, on reliable columns `offsets[t]` onward. Row 2 (q jj + i) of the
    subarray holds bit i of the fields of its block's input jj, row 2 (q jj + i) + 1 their complement;
    the top `scratch` rows are the compute area. `p` is the activation width the scratch is sized for.
    """

    name = "pud.layout"

    device: StringAttr = param_def()
    q: IntAttr = param_def()
    p: IntAttr = param_def()
    group: IntAttr = param_def()
    inputs: IntAttr = param_def()
    columns: IntAttr = param_def()
    rows: IntAttr = param_def()
    max_inputs: IntAttr = param_def()
    ranks: IntAttr = param_def()
    banks: IntAttr = param_def()
    subarrays_per_bank: IntAttr = param_def()
    scratch: IntAttr = param_def()
    first_slot: IntAttr = param_def()
    subarrays: DenseArrayBase = param_def()
    offsets: DenseArrayBase = param_def()

    def __init__(self, device: str, subarrays: Sequence[int], offsets: Sequence[int], **fields: int):
        missing = set(_INT_FIELDS) - fields.keys()
        if missing:
            raise TypeError(f"#pud.layout: missing {sorted(missing)}")
        super().__init__(
            StringAttr(device), *(IntAttr(int(fields[f])) for f in _INT_FIELDS),
            DenseArrayBase.from_list(i64, list(subarrays)), DenseArrayBase.from_list(i64, list(offsets)),
        )

    def value(self, field: str) -> int:
        return getattr(self, field).data

    def blocks(self, k: int) -> list[list[int]]:
        return split_inputs(k, min(self.value("group"), k), self.value("inputs"))

    def chunks(self, n: int) -> list[int]:
        cols = self.value("columns")
        return [min(cols, n - s) for s in range(0, n, cols)]

    def locate(self, n: int, k: int, m: int, j: int, i: int) -> tuple[int, int, int, int, int]:
        """(rank, bank, subarray, row, reliable column) of bit i of the field of output m, input j."""
        blocks, chunks = self.blocks(k), self.chunks(n)
        start = 0
        for b, block in enumerate(blocks):
            if j < start + sum(block):
                break
            start += sum(block)
        c = m // self.value("columns")
        t = b * len(chunks) + c
        slot = self.value("first_slot") + t
        ranks = self.value("ranks")
        bank = slot // ranks % (self.value("banks") // ranks)
        row = 2 * (self.value("q") * (j - start) + i)
        column = self.subarrays_offsets()[1][t] + m - c * self.value("columns")
        return slot % ranks, bank, self.subarrays_offsets()[0][t], row, column

    def subarrays_offsets(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(self.subarrays.get_values()), tuple(self.offsets.get_values())

    def check(self, n: int, k: int, q: int) -> None:
        """Raise VerifyException if this layout cannot hold a [n, k] weight of q-bit fields."""

        def fail(message: str) -> None:
            raise VerifyException(f"#pud.layout on '{self.device.data}': {message}")

        v = {f: self.value(f) for f in _INT_FIELDS}
        if v["q"] != q:
            fail(f"q = {v['q']}, the weight stores {q}-bit fields")
        if not 0 < v["inputs"] <= v["max_inputs"]:
            fail(f"inputs = {v['inputs']} must be in [1, max_inputs = {v['max_inputs']}]")
        if 2 * q * v["inputs"] + v["scratch"] > v["rows"]:
            fail(f"{v['inputs']} inputs x {2 * q} rows + {v['scratch']} scratch rows exceed the {v['rows']} rows of a subarray")
        if v["banks"] % v["ranks"] or min(v[f] for f in _INT_FIELDS) < 0:
            fail("banks must be a multiple of ranks and every field non-negative")
        tasks = len(self.blocks(k)) * len(self.chunks(n))
        subarrays, offsets = self.subarrays_offsets()
        if len(subarrays) != tasks or len(offsets) != tasks:
            fail(f"{len(subarrays)} subarrays and {len(offsets)} offsets listed, the weight needs {tasks} tasks")
        for t, (s, o) in enumerate(zip(subarrays, offsets)):
            width = self.chunks(n)[t % len(self.chunks(n))]
            if not 0 <= s < v["subarrays_per_bank"]:
                fail(f"task {t}: subarray {s} outside [0, {v['subarrays_per_bank']})")
            if o < 0 or o + width > v["columns"]:
                fail(f"task {t}: columns [{o}, {o + width}) outside the {v['columns']} reliable columns")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            device = parser.parse_str_literal()
            ints: dict[str, int] = {}
            lists: dict[str, list[int]] = {}
            while parser.parse_optional_punctuation(",") is not None:
                key = parser.parse_identifier()
                parser.parse_punctuation("=")
                if key in ("subarrays", "offsets"):
                    lists[key] = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
                elif key in _INT_FIELDS:
                    ints[key] = parser.parse_integer()
                else:
                    parser.raise_error(f"#pud.layout: unknown field '{key}'")
            missing = [f for f in (*_INT_FIELDS, "subarrays", "offsets") if f not in ints and f not in lists]
            if missing:
                parser.raise_error(f"#pud.layout: missing {', '.join(missing)}")
        return (
            StringAttr(device), *(IntAttr(ints[f]) for f in _INT_FIELDS),
            DenseArrayBase.from_list(i64, lists["subarrays"]), DenseArrayBase.from_list(i64, lists["offsets"]),
        )

    def print_parameters(self, printer: Printer) -> None:
        ints = ", ".join(f"{f} = {self.value(f)}" for f in _INT_FIELDS)
        subarrays, offsets = self.subarrays_offsets()
        printer.print_string(
            f'<"{self.device.data}", {ints}, subarrays = [{", ".join(map(str, subarrays))}], '
            f'offsets = [{", ".join(map(str, offsets))}]>'
        )


def stored_bits(quant: QuantAttr) -> int:
    """Field width of a weight format in the PUD layout (binary 1, ternary 2, intB B)."""
    fmt = quant.format.data
    if not quant.integer_codes:
        raise VerifyException(f"pud: weights must be integer codes, got {fmt}")
    return {"binary": 1, "ternary": 2}.get(fmt) or int(quant.code_bits)


def _act_bits(op: IRDLOperation, aquant: QuantAttr) -> int:
    fmt = aquant.format.data
    if not fmt.startswith("int") or aquant.scale.data == "per_group" or not aquant.symmetric.data:
        raise VerifyException(f"{op.name}: inputs must be symmetric integer codes, one scale per row, got {fmt}")
    return int(aquant.code_bits)


class PudOp(IRDLOperation):
    irdl_options = (ParsePropInAttrDict(),)


class ScheduledPudOp(ScheduledOp):
    """A PUD op on the device, with the host CPU that issues its commands (`host`)."""

    host = prop_def(StringAttr)


@irdl_op_definition
class PlaceOp(PudOp):
    """The weight `weight` [N, K] quantized as `wquant`, stored in the device as `layout` says."""

    name = "pud.place"
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    wquant = prop_def(QuantAttr)
    layout = prop_def(LayoutAttr)
    traits = traits_def(Pure())
    assembly_format = "$weight attr-dict `:` type($weight) `->` type($result)"

    def verify_(self) -> None:
        shape = tensor_shape(self.weight)
        if len(shape) != 2 or tensor_shape(self.result) != shape:
            raise VerifyException(f"pud.place: weight and result must be the same [N, K], got {self.weight.type} -> {self.result.type}")
        n, k = shape
        group = self.wquant.group.data if self.wquant.scale.data == "per_group" else k
        if min(group, k) != min(self.layout.value("group"), k):
            raise VerifyException(f"pud.place: layout group {self.layout.value('group')} differs from the weight's scale group {group}")
        self.layout.check(n, k, stored_bits(self.wquant))


def _placed(op: IRDLOperation, value) -> PlaceOp:
    owner = value.owner
    if not isinstance(owner, PlaceOp):
        raise VerifyException(f"{op.name}: the weight operand must come from pud.place")
    return owner


@irdl_op_definition
class EncodeOp(ScheduledPudOp):
    """Host: input rows [..., K] -> p-bit codes [R, K] (i32) and one scale per row [R] (`aquant`)."""

    name = "pud.encode"
    input = operand_def(TensorType)
    codes = result_def(TensorType)
    scales = result_def(TensorType)
    aquant = prop_def(QuantAttr)
    assembly_format = "$input attr-dict `:` type($input) `->` type($codes) `,` type($scales)"

    def verify_(self) -> None:
        _act_bits(self, self.aquant)
        xs = tensor_shape(self.input)
        rows = math.prod(xs[:-1]) if xs else 0
        if tensor_shape(self.codes) != (rows, xs[-1]) or tensor_shape(self.scales) != (rows,):
            raise VerifyException(f"pud.encode: codes must be [{rows}, {xs[-1]}] and scales [{rows}] for input {list(xs)}")


@irdl_op_definition
class GemvOp(ScheduledPudOp):
    """In DRAM: D [R, G, N] (i64) = per quantization group, codes [R, K] . fields [N, K]ᵀ, one GeMV per row."""

    name = "pud.gemv"
    codes = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    act_bits = prop_def(IntegerAttr[I64])
    row_ops = prop_def(IntegerAttr[I64])
    """Row operations the schedule priced for all rows (at the device's assumed activation bit density)."""
    assembly_format = "$codes `,` $weight attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        place = _placed(self, self.weight)
        n, k = tensor_shape(self.weight)
        rows, kc = tensor_shape(self.codes)
        groups = math.ceil(k / min(place.layout.value("group"), k))
        if kc != k or tensor_shape(self.result) != (rows, groups, n):
            raise VerifyException(f"pud.gemv: codes [{rows}, {kc}] x weight [{n}, {k}] must give [{rows}, {groups}, {n}]")
        p = self.act_bits.value.data
        if not 1 <= p <= place.layout.value("p"):
            raise VerifyException(f"pud.gemv: {p}-bit activations, the layout's scratch is sized for <= {place.layout.value('p')}")


@irdl_op_definition
class AggregateOp(ScheduledPudOp):
    """Host: y [..., N] = scales[r] * sum_g wscale[m, g] (mult D - offset A[g]) (+ bias) from the gemv's D."""

    name = "pud.aggregate"
    partial = operand_def(TensorType)
    codes = operand_def(TensorType)
    scales = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = (
        "$partial `,` $codes `,` $scales `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)"
    )

    def verify_(self) -> None:
        _placed(self, self.weight)
        n, _ = tensor_shape(self.weight)
        rows = tensor_shape(self.codes)[0]
        out = tensor_shape(self.result)
        if math.prod(out[:-1]) != rows or out[-1] != n:
            raise VerifyException(f"pud.aggregate: result {list(out)} must hold {rows} rows of {n} outputs")
        if self.bias is not None and tensor_shape(self.bias) != (n,):
            raise VerifyException(f"pud.aggregate: bias must be [{n}], got {list(tensor_shape(self.bias))}")


PUD = Dialect("pud", [PlaceOp, EncodeOp, GemvOp, AggregateOp], [LayoutAttr])

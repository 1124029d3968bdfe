"""Raise the generic ops of an ONNX import into the `llm` ops the rest of pimc knows.

Each pattern finds a candidate by structure and then proves it by numbers: the candidate subgraph
is evaluated with the reference kernels on a random input and compared with the `llm` op it would
become (RMSNorm incl. Gemma's (1+w), LayerNorm, SiLU, GELU (tanh/erf), ReLU², RoPE (half/interleaved,
partial), causal GQA attention with its scale). So an exporter's variant spelling of the same maths
raises, and a look-alike that computes something else does not. What is not raised stays generic
and still computes the same values.

Rotary tables and masks are constants folded for positions 0..S-1; what they mean (theta, window)
is read at the analysis length and handed to the other specializations by ONNX node name.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, StringAttr, TensorType, UnitAttr, i64
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from pimc.dialects import llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.dialects.llm_semantics import KERNELS, op_params
from pimc.frontends.onnx.emit import ONNX_NODE, POSITIONAL, AttentionSpec
from pimc.frontends.onnx.masks import RopeSpec, causal_window, rope_from_tables, visible_from_mask

RTOL, ATOL = 1e-4, 1e-5
CONE_LIMIT = 32


@dataclass
class RaiseContext:
    """What the patterns share: weight values, the positions argument and the analysis findings."""

    weights: Mapping[str, np.ndarray]
    positions: SSAValue
    seq: int
    specs: dict
    found: dict = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1234))

    def weight_value(self, v: SSAValue) -> np.ndarray | None:
        if isinstance(v.owner, llm.WeightOp):
            return self.weights.get(v.owner.properties["name"].data)
        return None

    def evaluate(self, root: SSAValue, leaves: dict[SSAValue, np.ndarray]) -> np.ndarray | None:
        """Value of `root` from `leaves` through the reference kernels (None if it reads anything else)."""
        memo = dict(leaves)

        def value(v: SSAValue):
            if v in memo:
                return memo[v]
            op = v.owner
            if isinstance(op, llm.WeightOp):
                result = self.weight_value(v)
                if result is None:
                    raise LookupError
            elif isinstance(op, llm.LlmOp) and op.name in KERNELS:
                args = tuple(value(o) for o in op.operands)
                result = KERNELS[op.name](args, op_params(op), tuple(r.type for r in op.results))
            else:
                raise LookupError
            memo[v] = result
            return result

        try:
            with np.errstate(all="ignore"):
                return np.asarray(value(root))
        except (LookupError, ValueError, IndexError):
            return None

    def random(self, shape) -> np.ndarray:
        return (self.rng.standard_normal(shape) * 2.0).astype(np.float32)


def close(got: np.ndarray | None, want: np.ndarray) -> bool:
    if got is None or got.shape != want.shape or not np.all(np.isfinite(got)):
        return False
    return bool(np.allclose(got, want, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(want).max()))))


def node_of(op: Operation) -> str:
    attr = op.attributes.get(ONNX_NODE)
    return attr.data if isinstance(attr, StringAttr) else ""


def shape(v: SSAValue) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


class NewOps:
    """Creates ops for a replacement, carrying the ONNX node they stand for."""

    def __init__(self, node: str):
        self.node, self.ops = node, []

    def op(self, cls, operands: Sequence[SSAValue | None], out_shape, element: Attribute | None = None, **props) -> SSAValue:
        operands = [o for o in operands if o is not None]
        element = element or operands[0].type.element_type
        op = cls.create(operands=operands, result_types=[TensorType(element, list(out_shape))], properties=props)
        op.attributes[ONNX_NODE] = StringAttr(self.node)
        self.ops.append(op)
        return op.results[0]

    def reshape(self, x: SSAValue, out_shape) -> SSAValue:
        return x if tuple(out_shape) == shape(x) else self.op(llm.ReshapeOp, [x], out_shape)

    def transpose(self, x: SSAValue, perm) -> SSAValue:
        if list(perm) == list(range(len(perm))):
            return x
        s = shape(x)
        return self.op(llm.TransposeOp, [x], [s[p] for p in perm], perm=DenseArrayBase.from_list(i64, list(perm)))


# ---------------------------------------------------------------------- head layouts

@dataclass(frozen=True)
class Layout:
    """How a tensor holds [S, H, D]: "bhsd" ([1, H, S, D] or [H, S, D]) or "bshd" ([1, S, H, D] or [S, H, D])."""

    kind: str
    rank: int

    def to_shd(self, b: NewOps, x: SSAValue) -> SSAValue:
        s = shape(x)
        if self.kind == "bhsd":
            h, seq, d = s[-3:]
            return b.reshape(b.transpose(x, (0, 2, 1, 3) if self.rank == 4 else (1, 0, 2)), (seq, h, d))
        return b.reshape(x, s[-3:])

    def from_shd(self, b: NewOps, y: SSAValue) -> SSAValue:
        seq, h, d = shape(y)
        if self.kind == "bhsd":
            if self.rank == 4:
                return b.transpose(b.reshape(y, (1, seq, h, d)), (0, 2, 1, 3))
            return b.transpose(y, (1, 0, 2))
        return b.reshape(y, (1, seq, h, d) if self.rank == 4 else (seq, h, d))

    def to_shd_array(self, a: np.ndarray) -> np.ndarray:
        if self.kind == "bhsd":
            return np.transpose(a.reshape(a.shape[-3:]), (1, 0, 2))
        return a.reshape(a.shape[-3:])

    def from_shd_array(self, a: np.ndarray, like: tuple[int, ...]) -> np.ndarray:
        if self.kind == "bhsd":
            return np.transpose(a, (1, 0, 2)).reshape(like)
        return a.reshape(like)


def layouts(x_shape: tuple[int, ...], seq: int) -> list[Layout]:
    rank = len(x_shape)
    if rank not in (3, 4) or (rank == 4 and x_shape[0] != 1):
        return []
    out = []
    if x_shape[-2] == seq:
        out.append(Layout("bhsd", rank))
    if x_shape[-3] == seq:
        out.append(Layout("bshd", rank))
    return out


# ---------------------------------------------------------------------- cones

CONE_OPS = (llm.UnaryOp, llm.BinaryOp, llm.AddOp, llm.MulOp, llm.ReduceOp, llm.ReluOp, llm.SliceOp, llm.ConcatOp)


@dataclass
class Cone:
    """The elementwise/reduction subgraph that computes `root` from one activation `x` and weights."""

    root: Operation
    x: SSAValue
    weights: list[SSAValue]
    has_reduce: bool


def _walk_cone(root: Operation, stop: SSAValue | None) -> tuple[dict[Operation, None], list[SSAValue], list[SSAValue]] | None:
    """Ops reachable from `root` through cone ops (not past `stop`, in discovery order), the other values
    they read, the weights."""
    seen: dict[Operation, None] = {}
    dynamic: list[SSAValue] = []
    weights: list[SSAValue] = []
    stack = [root]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen[op] = None
        if len(seen) > CONE_LIMIT:
            return None
        for v in op.operands:
            owner = v.owner
            if v is not stop and isinstance(owner, CONE_OPS):
                stack.append(owner)
            elif isinstance(owner, llm.WeightOp):
                if v not in weights:
                    weights.append(v)
            elif v not in dynamic:
                dynamic.append(v)
    return seen, dynamic, weights


def find_cones(root: Operation) -> Iterator[Cone]:
    """One-input cones ending at `root`, largest first: the whole cone when it reads one activation, then
    cuts at inner values of the root's type that every path goes through (a residual sum feeding a norm)."""
    if not isinstance(root, CONE_OPS) or root.results[0].type.element_type != root.operands[0].type.element_type:
        return
    out = root.results[0]
    walked = _walk_cone(root, None)
    if walked is None:
        return
    inner = [r for op in walked[0] if op is not root for r in op.results if r.type == out.type]
    for stop in [None, *reversed(inner)]:
        if stop is not None:
            walked = _walk_cone(root, stop)
            if walked is None:
                continue
        seen, dynamic, weights = walked
        if len(dynamic) == 1 and len(seen) >= 2 and dynamic[0].type == out.type:
            yield Cone(root, dynamic[0], weights, any(isinstance(op, llm.ReduceOp) for op in seen))


ACTIVATIONS = (
    (llm.SiluOp, {}),
    (llm.GeluOp, {"approximate": "tanh"}),
    (llm.GeluOp, {"approximate": "none"}),
    (llm.Relu2Op, {}),
)


class RaiseCone(RewritePattern):
    """Norms, activations and RoPE: a one-input cone proved equal to the `llm` op."""

    def __init__(self, ctx: RaiseContext):
        self.ctx = ctx

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        for cone in find_cones(op):
            new = self.raise_cone(cone)
            if new is not None:
                rewriter.replace(op, new.ops, [new.ops[-1].results[0]])
                return

    def raise_cone(self, cone: Cone) -> NewOps | None:
        ctx = self.ctx
        x_rand = ctx.random(shape(cone.x))
        got = ctx.evaluate(cone.root.results[0], {cone.x: x_rand})
        if got is None:
            return None
        positional = [w for w in cone.weights if POSITIONAL in w.owner.attributes]
        if positional:
            return self.rope(cone, x_rand, got, positional)
        if cone.has_reduce:
            return self.norm(cone, x_rand, got)
        return self.activation(cone, x_rand, got)

    def activation(self, cone: Cone, x: np.ndarray, got: np.ndarray) -> NewOps | None:
        for cls, props in ACTIVATIONS:
            attrs = {k: StringAttr(v) for k, v in props.items()}
            if close(got, KERNELS[cls.name]((x,), props, ())):
                b = NewOps(node_of(cone.root))
                b.op(cls, [cone.x], shape(cone.x), **attrs)
                return b
        return None

    def norm(self, cone: Cone, x: np.ndarray, got: np.ndarray) -> NewOps | None:
        d = shape(cone.x)[-1]
        vectors = [w for w in cone.weights if shape(w) == (d,)]
        scalars = [w for w in cone.weights if math.prod(shape(w)) == 1]
        values = {w: self.ctx.weight_value(w) for w in vectors + scalars}
        for eps_w in scalars:
            eps = float(values[eps_w].reshape(-1)[0])
            if not 0 < eps < 1:
                continue
            # Norms are scale-invariant but for eps: a second probe at the scale of eps tells
            # rmsnorm(x) from rmsnorm(c·x), so a cone that swallowed a scaling of x is not taken.
            x_small = (x * np.float32(math.sqrt(eps))).astype(np.float32)
            got_small = self.ctx.evaluate(cone.root.results[0], {cone.x: x_small})

            def same(kernel: str, args: tuple, small_args: tuple) -> bool:
                params = {"eps": eps}
                return close(got, KERNELS[kernel](args, params, ())) and close(got_small, KERNELS[kernel](small_args, params, ()))

            for w in vectors:
                if same(llm.RMSNormOp.name, (x, values[w]), (x_small, values[w])):
                    b = NewOps(node_of(cone.root))
                    b.op(llm.RMSNormOp, [cone.x, w], shape(cone.x), eps=f64_attr(eps))
                    return b
            for w in vectors:
                for bias in [v for v in vectors if v is not w] + [None]:
                    rest = (values[w],) + ((values[bias],) if bias is not None else ())
                    if same(llm.LayerNormOp.name, (x, *rest), (x_small, *rest)):
                        b = NewOps(node_of(cone.root))
                        b.op(llm.LayerNormOp, [cone.x, w, bias], shape(cone.x), eps=f64_attr(eps))
                        return b
        return None

    def rope(self, cone: Cone, x: np.ndarray, got: np.ndarray, tables: list[SSAValue]) -> NewOps | None:
        ctx, key = self.ctx, node_of(cone.root)
        spec = ctx.specs.get(key)
        if not isinstance(spec, RopeSpec):
            spec = None
            for cos in tables:
                for sin in tables:
                    if cos is not sin and spec is None:
                        spec = rope_from_tables(ctx.weight_value(cos), ctx.weight_value(sin), ctx.seq)
        if spec is None or spec.rotary_dim > shape(cone.x)[-1]:
            return None
        params = {"theta": spec.theta, "style": spec.style, "rotary_dim": spec.rotary_dim}
        for layout in layouts(shape(cone.x), ctx.seq):
            want = KERNELS[llm.RopeOp.name]((layout.to_shd_array(x), np.arange(ctx.seq)), params, ())
            if close(got, layout.from_shd_array(want, x.shape)):
                ctx.found[key] = spec
                b = NewOps(key)
                xs = layout.to_shd(b, cone.x)
                y = b.op(
                    llm.RopeOp, [xs, ctx.positions], shape(xs), theta=f64_attr(spec.theta),
                    style=StringAttr(spec.style), rotary_dim=i64_attr(spec.rotary_dim),
                )
                layout.from_shd(b, y)
                return b
        return None


# ---------------------------------------------------------------------- attention


def _scalar(ctx: RaiseContext, v: SSAValue) -> float | None:
    value = ctx.weight_value(v)
    if value is None or value.size != 1 or value.dtype.kind != "f":
        return None
    return float(value.reshape(-1)[0])


def peel_scale(ctx: RaiseContext, v: SSAValue) -> tuple[SSAValue, float]:
    """Strip multiplications and divisions by scalar constants; return the base and their product."""
    scale = 1.0
    while True:
        op = v.owner
        if isinstance(op, llm.MulOp):
            for a, b in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
                c = _scalar(ctx, b)
                if c is not None and shape(a) == shape(v):
                    v, scale = a, scale * c
                    break
            else:
                return v, scale
        elif isinstance(op, llm.BinaryOp) and op.fn.data == "div" and _scalar(ctx, op.rhs) and shape(op.lhs) == shape(v):
            v, scale = op.lhs, scale / _scalar(ctx, op.rhs)
        else:
            return v, scale


HEAD_LAYOUT_OPS = (llm.ReshapeOp, llm.TransposeOp, llm.BroadcastOp)


def find_heads(
    ctx: RaiseContext, value: SSAValue, heads: int, d: int | None, transposed: bool, repeat_ok: bool
) -> tuple[SSAValue, float, Layout] | None:
    """`value` = scale · layout(repeat(base)) for a base [1, KV, S, D] or [1, S, KV, D] (KV = heads unless
    `repeat_ok`): walk back through reshapes, transposes, broadcasts and scalar scales, and prove each
    candidate base by evaluating the chain on random numbers (GQA repeat_kv, kᵀ and scales in any
    exporter's order)."""
    candidates, v = [], value
    for _ in range(16):
        s = shape(v)
        if len(s) == 4 and s[0] == 1:
            for layout, (kv, seq, dim) in (("bhsd", (s[1], s[2], s[3])), ("bshd", (s[2], s[1], s[3]))):
                if seq == ctx.seq and (d is None or dim == d) and kv and heads % kv == 0 and (repeat_ok or kv == heads):
                    candidates.append((v, Layout(layout, 4)))
        op = v.owner
        if isinstance(op, HEAD_LAYOUT_OPS):
            v = op.operands[0]
        elif isinstance(op, (llm.MulOp, llm.BinaryOp)):
            base, _ = peel_scale(ctx, v)
            if base is v:
                break
            v = base
        else:
            break
    for base, layout in reversed(candidates):
        probe = ctx.random(shape(base))
        got = ctx.evaluate(value, {base: probe})
        bhsd = probe if layout.kind == "bhsd" else np.transpose(probe, (0, 2, 1, 3))
        want = np.repeat(bhsd, heads // bhsd.shape[1], axis=1)
        if transposed:
            want = np.swapaxes(want, -1, -2)
        if got is None or got.size != want.size:
            continue
        want = want.reshape(got.shape)
        i = int(np.argmax(np.abs(want)))
        scale = float(got.flat[i] / want.flat[i])
        if scale != 0 and close(got, want * np.float32(scale)):
            return base, scale, layout
    return None


def softmax_of(ctx: RaiseContext, probs: SSAValue) -> Operation | None:
    """The softmax behind attention probabilities, also when NaN rows are zeroed (torch's sdpa export:
    where(isnan(p), 0, p)); causal rows always see a key, so that guard never fires."""
    op = probs.owner
    if isinstance(op, llm.SelectOp) and isinstance(op.condition.owner, llm.UnaryOp) and op.condition.owner.fn.data == "isnan":
        p = op.condition.owner.input
        zero = _scalar(ctx, op.lhs)
        if zero == 0.0 and op.rhs is p:
            return p.owner
    return op


class RaiseAttention(RewritePattern):
    """softmax(q kᵀ · scale + causal mask) v with GQA repeats → `llm.attention` (causal, window)."""

    def __init__(self, ctx: RaiseContext):
        self.ctx = ctx

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.MatmulOp, rewriter: PatternRewriter) -> None:
        ctx = self.ctx
        soft = softmax_of(ctx, op.lhs)
        if not isinstance(soft, llm.SoftmaxOp) or soft.axis.value.data % len(shape(soft.input)) != len(shape(soft.input)) - 1:
            return
        scores, scale, mask = soft.input, 1.0, None
        while not isinstance(scores.owner, llm.MatmulOp):
            step = scores.owner
            if isinstance(step, llm.AddOp) and mask is None:
                for a, b in ((step.lhs, step.rhs), (step.rhs, step.lhs)):
                    if ctx.weight_value(b) is not None and ctx.weight_value(b).dtype.kind == "f":
                        scores, mask = a, ctx.weight_value(b)
                        break
                else:
                    return
            elif isinstance(step, llm.SelectOp) and mask is None:
                cond, fill_true, fill_false = (ctx.weight_value(v) for v in step.operands)
                if cond is None or (fill_true is None) == (fill_false is None):
                    return
                fill = fill_true if fill_true is not None else fill_false
                if fill.size != 1 or float(fill.reshape(-1)[0]) > -1e4:
                    return
                scores = step.rhs if fill_true is not None else step.lhs
                mask = cond if fill_false is not None else ~cond
            elif isinstance(step, (llm.MulOp, llm.BinaryOp)):
                base, s = peel_scale(ctx, scores)
                if base is scores:
                    return
                scores, scale = base, scale * s
            else:
                return
        qk = scores.owner
        head_dim = shape(qk.lhs)[-1]
        heads = math.prod(shape(qk.lhs)) // (ctx.seq * head_dim)
        if heads * ctx.seq * head_dim != math.prod(shape(qk.lhs)):
            return
        found_q = find_heads(ctx, qk.lhs, heads, head_dim, False, False)
        found_k = find_heads(ctx, qk.rhs, heads, head_dim, True, True)
        found_v = find_heads(ctx, op.rhs, heads, None, False, True)
        if found_q is None or found_k is None or found_v is None or abs(found_v[1] - 1.0) > 1e-6:
            return
        (q, q_scale, q_layout), (k, k_scale, k_layout), (v, _, v_layout) = found_q, found_k, found_v
        d = head_dim
        key = node_of(soft)
        spec = ctx.specs.get(key)
        if not isinstance(spec, AttentionSpec):
            if mask is None:
                return
            visible = visible_from_mask(mask, ctx.seq, ctx.seq)
            found_window = causal_window(visible) if visible is not None else None
            if found_window is None:
                return
            spec = AttentionSpec(found_window[1])
        ctx.found[key] = spec
        b = NewOps(key)
        qs3, ks3, vs3 = q_layout.to_shd(b, q), k_layout.to_shd(b, k), v_layout.to_shd(b, v)
        if shape(ks3) != shape(vs3) or shape(vs3)[2] != d:
            return
        props = {
            "heads": i64_attr(heads), "kv_heads": i64_attr(shape(ks3)[1]), "head_dim": i64_attr(d),
            "scale": f64_attr(scale * q_scale * k_scale), "causal": UnitAttr(),
        }
        if spec.window is not None:
            props["window"] = i64_attr(spec.window)
        y = b.op(llm.AttentionOp, [qs3, ks3, vs3, ctx.positions], shape(qs3), **props)
        b.reshape(Layout("bhsd", 4).from_shd(b, y), shape(op.result))
        rewriter.replace(op, b.ops, [b.ops[-1].results[0]])


class UnrepeatKeyValues(RewritePattern):
    """An attention whose keys/values are repeat_kv copies (the opset-23 Attention op after an explicit
    GQA expand) reads the un-repeated [S, KV, D] tensors instead, so the KV cache holds KV heads."""

    def __init__(self, ctx: RaiseContext):
        self.ctx = ctx

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.AttentionOp, rewriter: PatternRewriter) -> None:
        heads = op.heads.value.data
        if op.kv_heads.value.data != heads:
            return
        bases = [self.base(v, heads) for v in (op.key, op.value)]
        if None in bases or shape(bases[0]) != shape(bases[1]):
            return
        b = NewOps(node_of(op))
        layout = Layout("bhsd", 4)
        k, v = (layout.to_shd(b, x) for x in bases)
        props = dict(op.properties)
        props["kv_heads"] = i64_attr(shape(k)[1])
        new = llm.AttentionOp.create(operands=[op.query, k, v, op.positions], result_types=[op.result.type], properties=props, attributes=dict(op.attributes))
        rewriter.replace(op, [*b.ops, new], [new.results[0]])

    def base(self, value: SSAValue, heads: int) -> SSAValue | None:
        ctx, v = self.ctx, value
        for _ in range(12):
            op = v.owner
            if not isinstance(op, HEAD_LAYOUT_OPS):
                return None
            v = op.operands[0]
            s = shape(v)
            if len(s) == 4 and s[0] == 1 and s[2] == ctx.seq and 0 < s[1] < heads and heads % s[1] == 0:
                probe = ctx.random(s)
                want = np.transpose(np.repeat(probe, heads // s[1], axis=1)[0], (1, 0, 2))
                got = ctx.evaluate(value, {v: probe})
                if got is not None and got.shape == want.shape and np.array_equal(got, want):
                    return v
        return None


# ---------------------------------------------------------------------- linear bias


class FoldLinearBias(RewritePattern):
    """add(linear(x, W), b [N]) → linear(x, W, bias b)."""

    def __init__(self, ctx: RaiseContext):
        self.ctx = ctx

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.AddOp, rewriter: PatternRewriter) -> None:
        for a, b in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            lin = a.owner
            if (
                isinstance(lin, llm.LinearOp) and lin.bias is None and a.has_one_use()
                and isinstance(b.owner, llm.WeightOp) and shape(b) == (shape(lin.weight)[0],)
                and shape(op.result) == shape(a) and POSITIONAL not in b.owner.attributes
            ):
                new = llm.LinearOp.create(
                    operands=[lin.input, lin.weight, b], result_types=[lin.result.type], properties=dict(lin.properties),
                    attributes=dict(lin.attributes),
                )
                rewriter.replace(op, [new], [new.results[0]])
                rewriter.erase(lin)
                return


# ---------------------------------------------------------------------- canonical shapes


class FoldReshapes(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.ReshapeOp, rewriter: PatternRewriter) -> None:
        if op.input.type == op.result.type:
            rewriter.replace(op, [], [op.input])
        elif isinstance(op.input.owner, llm.ReshapeOp):
            new = llm.ReshapeOp.create(operands=[op.input.owner.input], result_types=[op.result.type], attributes=dict(op.attributes))
            rewriter.replace(op, [new], [new.results[0]])


class FoldTransposes(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: llm.TransposeOp, rewriter: PatternRewriter) -> None:
        perm = tuple(op.perm.get_values())
        src = op.input
        if isinstance(src.owner, llm.TransposeOp):
            inner = tuple(src.owner.perm.get_values())
            perm, src = tuple(inner[p] for p in perm), src.owner.input
            if perm == tuple(range(len(perm))):
                rewriter.replace(op, [], [src])
                return
            new = llm.TransposeOp.create(
                operands=[src], result_types=[op.result.type],
                properties={"perm": DenseArrayBase.from_list(i64, list(perm))}, attributes=dict(op.attributes),
            )
            rewriter.replace(op, [new], [new.results[0]])
            return
        s = shape(src)
        moved = [p for p in perm if s[p] != 1]
        if moved == sorted(moved):  # only unit axes move: a reshape
            new = llm.ReshapeOp.create(operands=[src], result_types=[op.result.type], attributes=dict(op.attributes))
            rewriter.replace(op, [new], [new.results[0]])


def raise_function(fn: func.FuncOp, ctx: RaiseContext, attention: bool = True) -> None:
    """Run the raising patterns, then fold layout ops and drop what became dead. Without `attention`
    (shape-only graphs: no token positions) attention stays as its matmuls and softmax."""
    PatternRewriteWalker(GreedyRewritePatternApplier([RaiseCone(ctx)]), walk_reverse=True, apply_recursively=False).rewrite_region(fn.body)
    if attention:
        PatternRewriteWalker(GreedyRewritePatternApplier([RaiseAttention(ctx)]), apply_recursively=False).rewrite_region(fn.body)
        PatternRewriteWalker(GreedyRewritePatternApplier([UnrepeatKeyValues(ctx)]), apply_recursively=False).rewrite_region(fn.body)
    canonical = [FoldLinearBias(ctx), FoldReshapes(), FoldTransposes()]
    PatternRewriteWalker(GreedyRewritePatternApplier(canonical)).rewrite_region(fn.body)

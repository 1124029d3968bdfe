"""`ModelConfig` → an `llm` module with two functions that share weights and KV caches:

    func.func @prefill(%ids: tensor<Sxi64>, %pos: tensor<Sxi64>) -> (logits [S, V], next ids [S])
    func.func @decode(%ids: tensor<1xi64>, %pos: tensor<1xi64>) -> (logits [1, V], next ids [1])

Prefill attends over the prompt's own keys and writes them into the caches; decode appends one row
to each cache (capacity = context) and attends over all of it, the causal mask hiding empty slots.
Weight names follow the Hugging Face checkpoint of the family; layouts are pimc's ([out, in]).
"""

from __future__ import annotations

import math

from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType, UnitAttr, f32, i64
from xdsl.ir import Block, Region, SSAValue
from xdsl.rewriter import InsertPoint

from pimc.dialects import llm
from pimc.dialects.llm import f64_attr, i64_attr
from pimc.errors import ModelError
from pimc.frontends.hf_config import ModelConfig


def build_module(cfg: ModelConfig, seq_len: int, context: int, wquant: llm.QuantAttr | None = None) -> ModuleOp:
    """The prefill (seq_len tokens) and decode (KV cache of `context` slots) functions of `cfg`."""
    if seq_len <= 0 or context <= 0:
        raise ModelError(f"seq-len ({seq_len}) and context ({context}) must be positive")
    if seq_len > context:
        raise ModelError(f"seq-len {seq_len} exceeds the context {context}")
    if cfg.rope_theta is None and context > cfg.max_positions:
        raise ModelError(f"{cfg.name}: context {context} exceeds its {cfg.max_positions} learned positions")
    funcs = [_Graph(cfg, seq_len, context, wquant, "prefill").build(), _Graph(cfg, 1, context, wquant, "decode").build()]
    module = ModuleOp(funcs)
    module.attributes["pimc.model"] = StringAttr(cfg.name)
    return module


def tensor(shape, element=f32) -> TensorType:
    return TensorType(element, list(shape))


class _Graph:
    """Emits one function; one method per model part, named like the architecture."""

    def __init__(self, cfg: ModelConfig, seq: int, context: int, wquant: llm.QuantAttr | None, phase: str):
        self.cfg, self.seq, self.context, self.wquant, self.phase = cfg, seq, context, wquant, phase
        self.weights: dict[str, SSAValue] = {}

    def build(self) -> func.FuncOp:
        cfg, s = self.cfg, self.seq
        in_types = [tensor([s], i64), tensor([s], i64)]
        out_types = [tensor([s, cfg.vocab_size]), tensor([s], i64)]
        block = Block(arg_types=in_types)
        block.args[0].name_hint, block.args[1].name_hint = "ids", "pos"
        self.b = Builder(InsertPoint.at_end(block))
        ids, pos = block.args
        x = self.embed(ids, pos)
        for layer in range(cfg.num_layers):
            x = self.block(x, pos, layer)
        logits, next_ids = self.head(x)
        self.b.insert(func.ReturnOp(logits, next_ids))
        return func.FuncOp(self.phase, (in_types, out_types), Region(block))

    # ------------------------------------------------------------------ pieces

    def weight(self, name: str, shape) -> SSAValue:
        if name not in self.weights:
            op = self.b.insert(llm.WeightOp(name, tensor(shape)))
            op.result.name_hint = "w"
            self.weights[name] = op.result
        return self.weights[name]

    def op(self, cls, operands, shape, element=f32, **props) -> SSAValue:
        operands = [o for o in operands if o is not None]
        op = cls.create(operands=operands, result_types=[tensor(shape, element)], properties=props)
        self.b.insert(op)
        return op.results[0]

    def names(self) -> dict[str, str]:
        return {
            "llama": {"embed": "model.embed_tokens.weight", "norm": "model.norm", "head": "lm_head.weight"},
            "gpt2": {"embed": "transformer.wte.weight", "pos": "transformer.wpe.weight", "norm": "transformer.ln_f"},
            "opt": {
                "embed": "model.decoder.embed_tokens.weight",
                "pos": "model.decoder.embed_positions.weight",
                "norm": "model.decoder.final_layer_norm",
            },
        }[self.cfg.family]

    def embed(self, ids: SSAValue, pos: SSAValue) -> SSAValue:
        cfg, n = self.cfg, self.names()
        table = self.weight(n["embed"], (cfg.vocab_size, cfg.hidden_size))
        x = self.op(llm.EmbeddingOp, [ids, table], (self.seq, cfg.hidden_size))
        if cfg.rope_theta is None:
            # Learned positions: rows 0..max_positions-1 (OPT's 2-row offset is dropped at load time).
            ptable = self.weight(n["pos"], (cfg.max_positions, cfg.hidden_size))
            p = self.op(llm.EmbeddingOp, [pos, ptable], (self.seq, cfg.hidden_size))
            x = self.op(llm.AddOp, [x, p], (self.seq, cfg.hidden_size))
        return x

    def norm(self, x: SSAValue, prefix: str) -> SSAValue:
        cfg, d = self.cfg, self.cfg.hidden_size
        w = self.weight(f"{prefix}.weight", (d,))
        eps = f64_attr(cfg.norm_eps)
        if cfg.norm == "rms":
            return self.op(llm.RMSNormOp, [x, w], (self.seq, d), eps=eps)
        b = self.weight(f"{prefix}.bias", (d,))
        return self.op(llm.LayerNormOp, [x, w, b], (self.seq, d), eps=eps)

    def linear(self, x: SSAValue, prefix: str, n_out: int, n_in: int, bias: bool) -> SSAValue:
        w = self.weight(f"{prefix}.weight", (n_out, n_in))
        b = self.weight(f"{prefix}.bias", (n_out,)) if bias else None
        props = {"wquant": self.wquant} if self.wquant is not None else {}
        return self.op(llm.LinearOp, [x, w, b], (self.seq, n_out), **props)

    def block_names(self, layer: int) -> dict[str, str]:
        if self.cfg.family == "llama":
            p = f"model.layers.{layer}"
            return {
                "norm1": f"{p}.input_layernorm", "q": f"{p}.self_attn.q_proj", "k": f"{p}.self_attn.k_proj",
                "v": f"{p}.self_attn.v_proj", "o": f"{p}.self_attn.o_proj", "norm2": f"{p}.post_attention_layernorm",
                "gate": f"{p}.mlp.gate_proj", "up": f"{p}.mlp.up_proj", "down": f"{p}.mlp.down_proj",
            }
        if self.cfg.family == "gpt2":
            p = f"transformer.h.{layer}"
            return {
                "norm1": f"{p}.ln_1", "qkv": f"{p}.attn.c_attn", "o": f"{p}.attn.c_proj", "norm2": f"{p}.ln_2",
                "up": f"{p}.mlp.c_fc", "down": f"{p}.mlp.c_proj",
            }
        p = f"model.decoder.layers.{layer}"
        return {
            "norm1": f"{p}.self_attn_layer_norm", "q": f"{p}.self_attn.q_proj", "k": f"{p}.self_attn.k_proj",
            "v": f"{p}.self_attn.v_proj", "o": f"{p}.self_attn.out_proj", "norm2": f"{p}.final_layer_norm",
            "up": f"{p}.fc1", "down": f"{p}.fc2",
        }

    def block(self, x: SSAValue, pos: SSAValue, layer: int) -> SSAValue:
        cfg, s, d = self.cfg, self.seq, self.cfg.hidden_size
        n = self.block_names(layer)
        h = self.norm(x, n["norm1"])
        q, k, v = self.qkv(h, n)
        attn = self.attention(q, k, v, pos, layer)
        o = self.op(llm.ReshapeOp, [attn], (s, cfg.num_heads * cfg.head_dim))
        o = self.linear(o, n["o"], d, cfg.num_heads * cfg.head_dim, cfg.out_bias)
        x = self.op(llm.AddOp, [x, o], (s, d))
        h = self.norm(x, n["norm2"])
        return self.op(llm.AddOp, [x, self.mlp(h, n)], (s, d))

    def qkv(self, h: SSAValue, n: dict[str, str]) -> tuple[SSAValue, SSAValue, SSAValue]:
        cfg, s, d, hd = self.cfg, self.seq, self.cfg.hidden_size, self.cfg.head_dim
        widths = (cfg.num_heads * hd, cfg.num_kv_heads * hd, cfg.num_kv_heads * hd)
        if "qkv" in n:  # GPT-2's fused c_attn, split by slices
            fused = self.linear(h, n["qkv"], sum(widths), d, cfg.qkv_bias)
            starts = (0, widths[0], widths[0] + widths[1])
            parts = [
                self.op(llm.SliceOp, [fused], (s, w), axis=i64_attr(1), start=i64_attr(a), end=i64_attr(a + w))
                for a, w in zip(starts, widths)
            ]
        else:
            parts = [self.linear(h, n[t], w, d, cfg.qkv_bias) for t, w in zip("qkv", widths)]
        heads = (cfg.num_heads, cfg.num_kv_heads, cfg.num_kv_heads)
        return tuple(self.op(llm.ReshapeOp, [p], (s, nh, hd)) for p, nh in zip(parts, heads))

    def attention(self, q: SSAValue, k: SSAValue, v: SSAValue, pos: SSAValue, layer: int) -> SSAValue:
        cfg, s, hd = self.cfg, self.seq, self.cfg.head_dim
        if cfg.rope_theta is not None:
            rope = {"theta": f64_attr(cfg.rope_theta), "style": StringAttr("half"), "rotary_dim": i64_attr(hd)}
            q = self.op(llm.RopeOp, [q, pos], (s, cfg.num_heads, hd), **rope)
            k = self.op(llm.RopeOp, [k, pos], (s, cfg.num_kv_heads, hd), **rope)
        cache_shape = (self.context, cfg.num_kv_heads, hd)
        k_cache = self.op(llm.KVCacheAppendOp, [k, pos], cache_shape, cache=StringAttr(f"layers.{layer}.k"))
        v_cache = self.op(llm.KVCacheAppendOp, [v, pos], cache_shape, cache=StringAttr(f"layers.{layer}.v"))
        keys, values = (k, v) if self.phase == "prefill" else (k_cache, v_cache)
        props = {
            "heads": i64_attr(cfg.num_heads),
            "kv_heads": i64_attr(cfg.num_kv_heads),
            "head_dim": i64_attr(hd),
            "scale": f64_attr(1.0 / math.sqrt(hd)),
            "causal": UnitAttr(),
        }
        if cfg.sliding_window is not None and cfg.sliding_window < self.context:
            props["window"] = i64_attr(cfg.sliding_window)
        return self.op(llm.AttentionOp, [q, keys, values, pos], (s, cfg.num_heads, hd), **props)

    def mlp(self, h: SSAValue, n: dict[str, str]) -> SSAValue:
        cfg, s, d, f = self.cfg, self.seq, self.cfg.hidden_size, self.cfg.intermediate_size
        up = self.linear(h, n["up"], f, d, cfg.mlp_bias)
        if cfg.gated_mlp:
            gate = self.activation(self.linear(h, n["gate"], f, d, cfg.mlp_bias))
            up = self.op(llm.MulOp, [gate, up], (s, f))
        else:
            up = self.activation(up)
        return self.linear(up, n["down"], d, f, cfg.mlp_bias)

    def activation(self, x: SSAValue) -> SSAValue:
        act, shape = self.cfg.activation, (self.seq, self.cfg.intermediate_size)
        if act in ("gelu", "gelu_tanh"):
            return self.op(llm.GeluOp, [x], shape, approximate=StringAttr("tanh" if act == "gelu_tanh" else "none"))
        cls = {"silu": llm.SiluOp, "relu": llm.ReluOp, "relu2": llm.Relu2Op}[act]
        return self.op(cls, [x], shape)

    def head(self, x: SSAValue) -> tuple[SSAValue, SSAValue]:
        cfg, n = self.cfg, self.names()
        h = self.norm(x, n["norm"])
        table = self.weights[n["embed"]] if cfg.tie_embeddings else self.weight(n["head"], (cfg.vocab_size, cfg.hidden_size))
        props = {"wquant": self.wquant} if self.wquant is not None else {}
        logits = self.op(llm.LinearOp, [h, table], (self.seq, cfg.vocab_size), **props)
        return logits, self.op(llm.ArgmaxOp, [logits], (self.seq,), i64, axis=i64_attr(-1))


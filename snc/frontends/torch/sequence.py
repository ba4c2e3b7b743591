"""torch.export programs of decoder language models -> sequence graphs (snc.ir.sequence).

A program whose input is integer token ids (batch, L) is read here instead of as an ANN. Each
static-weight matrix product becomes a ``Projection`` (synapses); everything else becomes an
explicit dense-compute node:

  ===========================================  =====================================
  ATen / snc operator                          IR node
  ===========================================  =====================================
  aten.embedding (weight a parameter)          Embedding
  aten.linear, aten.matmul / aten.mm with a    Projection (a tied LM head ``x @ E.T``
  constant right operand                       is one, with the embedding's weights)
  aten.rms_norm, aten.layer_norm               Norm
  aten.silu, gelu, relu, sigmoid, tanh         Activation
  aten.mul of two computed tensors             Product
  aten.add of two computed tensors             Residual
  snc.causal_attention (snc.lm.ops)            Attention (window 0 = full causal)
  snc.gated_linear_attention (snc.lm.ops)      LinearAttention
  aten.scaled_dot_product_attention, causal,   Attention (the head split and merge
  no mask, default scale, on head-split views  around it, view + transpose, vanish)
  clone, contiguous, alias, dropout (eval)     (nothing: the value passes through)
  ===========================================  =====================================

Anything else on a computed tensor raises UnsupportedOperator naming the FX node, its module
and this list: an operation the report would have to hide is refused, not skipped. Node names
are module paths (``blocks.0.mixer.q``), ``<module>.<fx name>`` when a module's forward holds
several operations (the residual adds of a block).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

import snc.lm.ops  # noqa: F401  (registers snc::causal_attention and snc::gated_linear_attention)
from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import Graph, Node
from snc.ir.sequence import Activation, Attention, Embedding, LinearAttention, Norm, Product, Projection, Residual, Tokens

from .common import _ancestors, _owner


@dataclass
class _Value:
    name: str  # temporary IR name
    shape: tuple[int, ...]  # sample shape (batch excluded)


@dataclass
class _Heads:
    """A (L, d) value viewed as (L, heads, d_h) (``transposed``: as (heads, L, d_h)), the layout
    ``aten.scaled_dot_product_attention`` reads; only views, transposes and attention take it."""

    value: _Value
    heads: int
    transposed: bool


_ACTS = {"aten.silu": "silu", "aten.relu": "relu", "aten.sigmoid": "sigmoid", "aten.tanh": "tanh", "aten.gelu": "gelu"}
_PASS = ("aten.clone", "aten.contiguous", "aten.alias", "aten.dropout", "aten.detach", "aten.lift_fresh_copy")
_VIEWS = ("aten.view", "aten.reshape", "aten._unsafe_view")
SUPPORTED = sorted(["aten.embedding", "aten.linear", "aten.matmul", "aten.mm", "aten.rms_norm", "aten.layer_norm",
                    "aten.mul", "aten.add", "snc.causal_attention", "snc.gated_linear_attention",
                    "aten.scaled_dot_product_attention", "aten.transpose", *_VIEWS, *_ACTS, *_PASS])


def is_token_program(ep: "torch.export.ExportedProgram") -> bool:
    """Whether the program's user input is integer token ids."""
    user = {s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT" and hasattr(s.arg, "name")}
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and not val.dtype.is_floating_point and val.dtype != torch.bool:
                return True
    return False


def from_exported_sequence(ep: "torch.export.ExportedProgram", name: str) -> Graph:
    return _SequenceConverter(ep).run(name)


class _SequenceConverter:
    def __init__(self, ep) -> None:
        self.ep = ep
        self.env: dict[torch.fx.Node, Any] = {}
        self.entries: dict[str, tuple[Node, list[str], tuple[str, str] | None, str]] = {}
        self.fx: torch.fx.Node | None = None
        self.vocab: int | None = None

    # --- errors --------------------------------------------------------------------------------
    def _fail(self, why: str) -> None:
        fx = self.fx
        owner = _owner(fx) if fx is not None else None
        where = f" in module {owner[0]!r} ({owner[1].rsplit('.', 1)[-1]})" if owner and owner[0] else ""
        op = str(fx.target.overloadpacket) if fx is not None and isinstance(fx.target, torch._ops.OpOverload) else None
        head = f"operator {op}{where}: " if op else (f"{where.strip()}: " if where else "")
        raise UnsupportedOperator(f"language model: {head}{why}", node=fx.name if fx is not None else None)

    # --- driver --------------------------------------------------------------------------------
    def run(self, name: str) -> Graph:
        sig = self.ep.graph_signature
        specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
        nodes = list(self.ep.graph.nodes)
        out_node = next(n for n in nodes if n.op == "output")
        results = out_node.args[0]
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        user_out = [r for r, s in zip(results, sig.output_specs) if s.kind.name == "USER_OUTPUT"]
        if len(user_out) != 1 or not isinstance(user_out[0], torch.fx.Node):
            raise InvalidModel(f"a language model returns one tensor of logits, this program returns {len(user_out)} outputs")
        needed = _ancestors(user_out)
        for node in nodes:
            self.fx = node
            if node.op == "placeholder":
                spec = specs[node.name]
                kind = spec.kind.name
                if kind == "USER_INPUT":
                    self.env[node] = self._tokens(node)
                elif kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
                    value = self.ep.state_dict.get(spec.target)
                    if value is None:
                        value = self.ep.constants.get(spec.target)
                    if not isinstance(value, torch.Tensor):
                        raise InvalidModel(f"parameter or constant {spec.target!r} is missing from the program", node=node.name)
                    self.env[node] = value.detach().clone()
                else:
                    self.env[node] = None
            elif node.op == "call_function" and node in needed:
                self.env[node] = self._call(node)
            elif node.op not in ("call_function", "output") and node in needed:
                self._fail(f"graph node kind {node.op!r} (control flow or submodule call) is not supported")
        self.fx = None
        out = self.env[user_out[0]]
        if not isinstance(out, _Value) or len(out.shape) != 2:
            raise InvalidModel("the program's output is not per-token logits (batch, L, vocab) computed from the tokens")
        return self._build(name, out.name)

    def _tokens(self, node) -> _Value:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dim() != 2:
            self._fail(f"token input {node.name!r} must be (batch, L) integer ids, got {getattr(val, 'shape', None)}")
        length = val.shape[1]
        if not isinstance(length, int):
            self._fail("the sequence length is dynamic; export with a fixed length L")
        self.entries[node.name] = (Tokens(length=int(length), vocab=1), [], None, node.name)
        return _Value(node.name, (int(length),))

    def _add(self, node: Node, inputs: list[_Value], shape: tuple[int, ...]) -> _Value:
        fx = self.fx
        tmp = fx.name
        self.entries[tmp] = (node, [v.name for v in inputs], _owner(fx), fx.name)
        return _Value(tmp, tuple(int(d) for d in shape))

    def _shape(self) -> tuple[int, ...]:
        val = self.fx.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dim() != 3:
            self._fail(f"expected a (batch, L, features) result, got {getattr(val, 'shape', None)}")
        return tuple(int(d) for d in val.shape[1:])

    # --- operators -----------------------------------------------------------------------------
    def _call(self, node: torch.fx.Node) -> Any:
        target = node.target
        if target is operator.getitem:
            self._fail("indexing a computed value is not supported")
        args = [self._map(a) for a in node.args]
        kwargs = {k: self._map(v) for k, v in node.kwargs.items()}
        computed = [a for a in list(args) + list(kwargs.values()) if isinstance(a, (_Value, _Heads))]
        if not isinstance(target, torch._ops.OpOverload):
            self._fail(f"{getattr(target, '__name__', target)} is not supported")
        op = str(target.overloadpacket)
        if not computed:  # constants only: fold (w.t(), a weight's transpose for a tied head ...)
            try:
                with torch.no_grad():
                    return target(*args, **kwargs)
            except Exception as exc:
                self._fail(f"could not evaluate it on constants ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        if op in _PASS:
            return args[0]
        if op in _VIEWS or op in ("aten.transpose", "aten.scaled_dot_product_attention"):
            return self._heads(op, args, kwargs)
        if any(isinstance(a, _Heads) for a in computed):
            self._fail("a head-split view is read by something other than attention or the merge of its heads")
        if op == "aten.embedding":
            weight, ids = args[0], args[1]
            if not isinstance(weight, torch.Tensor) or not isinstance(ids, _Value) or len(ids.shape) != 1:
                self._fail("an embedding needs a constant table and the token ids")
            self.vocab = int(weight.shape[0])
            return self._add(Embedding(weight=weight.float().numpy()), [ids], (ids.shape[0], int(weight.shape[1])))
        if op == "aten.linear":
            x, w = args[0], args[1]
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            if not isinstance(x, _Value) or not isinstance(w, torch.Tensor) or isinstance(b, _Value):
                self._fail("a projection needs constant weights (an activation x activation product is not a projection)")
            bias = None if b is None else b.float().numpy()
            return self._add(Projection(weight=w.float().numpy(), bias=bias), [x], self._shape())
        if op in ("aten.matmul", "aten.mm"):
            x, w = args[0], args[1]
            if isinstance(x, _Value) and isinstance(w, torch.Tensor) and w.dim() == 2:
                return self._add(Projection(weight=w.t().float().numpy()), [x], self._shape())
            self._fail("a matrix product of two computed values must be written with snc.lm.ops attention operators")
        if op == "aten.rms_norm":
            x, shape = args[0], args[1]
            w = args[2] if len(args) > 2 else kwargs.get("weight")
            eps = args[3] if len(args) > 3 else kwargs.get("eps")
            self._check_last(x, shape)
            eps = float(torch.finfo(torch.float32).eps) if eps is None else float(eps)
            return self._add(Norm(mode="rms", weight=None if w is None else w.float().numpy(), eps=eps), [x], x.shape)
        if op == "aten.layer_norm":
            x, shape = args[0], args[1]
            w = args[2] if len(args) > 2 else kwargs.get("weight")
            b = args[3] if len(args) > 3 else kwargs.get("bias")
            eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
            self._check_last(x, shape)
            return self._add(Norm(mode="layer", weight=None if w is None else w.float().numpy(),
                                  bias=None if b is None else b.float().numpy(), eps=float(eps)), [x], x.shape)
        if op in _ACTS:
            fn = _ACTS[op]
            if op == "aten.gelu" and (kwargs.get("approximate") or (args[1] if len(args) > 1 else "none")) == "tanh":
                fn = "gelu_tanh"
            return self._add(Activation(fn=fn), [args[0]], args[0].shape)
        if op in ("aten.mul", "aten.add"):
            a, b = args[0], args[1]
            if not (isinstance(a, _Value) and isinstance(b, _Value)):
                self._fail("an activation scaled or shifted by a constant is not supported (fold it into a projection)")
            if op == "aten.add" and kwargs.get("alpha", 1) != 1:
                self._fail("add with alpha != 1 is not supported")
            if a.shape != b.shape:
                self._fail(f"operands of shapes {a.shape} and {b.shape} (broadcasting is not supported)")
            kind = Product() if op == "aten.mul" else Residual()
            return self._add(kind, [a, b], a.shape)
        if op == "snc.causal_attention":
            q, k, v, heads, window = args
            return self._add(Attention(heads=int(heads), window=int(window)), [q, k, v], q.shape)
        if op == "snc.gated_linear_attention":
            q, k, v, a, heads = args
            return self._add(LinearAttention(heads=int(heads)), [q, k, v, a], q.shape)
        self._fail(f"not supported in a language model; supported: {', '.join(SUPPORTED)}")

    def _heads(self, op: str, args: list, kwargs: dict) -> Any:
        """The head split (view (b, L, h, d_h), transpose(1, 2)) around scaled-dot-product
        attention and the merge after it (transpose(1, 2), view (b, L, d)): no IR node, only the
        layout is followed; the attention becomes an ``Attention`` node."""
        x = args[0]
        if op in _VIEWS:
            shape = [int(d) for d in args[1]]
            if isinstance(x, _Value) and len(x.shape) == 2 and len(shape) == 4 and shape[1] == x.shape[0] \
                    and shape[2] * shape[3] == x.shape[1]:
                return _Heads(x, shape[2], transposed=False)
            if isinstance(x, _Heads) and not x.transposed and len(shape) == 3 and tuple(shape[1:]) == x.value.shape:
                return x.value
            if isinstance(x, _Value) and len(shape) == len(x.shape) + 1 and tuple(shape[1:]) == x.shape:
                return x  # a view that changes nothing
            self._fail(f"a view to {shape} is supported only to split (b, L, heads, d_h) and merge attention heads")
        if op == "aten.transpose":
            dims = sorted(int(d) % 4 for d in args[1:3])
            if isinstance(x, _Heads) and dims == [1, 2]:
                return _Heads(x.value, x.heads, not x.transposed)
            self._fail("a transpose is supported only between the token and head axes of a head-split view")
        q, k, v = args[:3]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        dropout = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
        causal = args[5] if len(args) > 5 else kwargs.get("is_causal", False)
        scale = args[6] if len(args) > 6 else kwargs.get("scale")
        if not all(isinstance(t, _Heads) and t.transposed for t in (q, k, v)) or len({t.heads for t in (q, k, v)}) != 1:
            self._fail("attention needs q, k and v split into the same heads, (b, heads, L, d_h)")
        dh = q.value.shape[1] // q.heads
        if mask is not None or not causal or float(dropout) != 0.0 or kwargs.get("enable_gqa"):
            self._fail("only causal attention without a mask, dropout or grouped heads is supported "
                       "(a sliding window: snc.lm.ops.causal_attention)")
        if scale is not None and abs(float(scale) - dh ** -0.5) > 1e-12:
            self._fail(f"attention scale {scale} differs from 1/sqrt(d_h); snc's Attention uses 1/sqrt(d_h)")
        out = self._add(Attention(heads=q.heads, window=0), [q.value, k.value, v.value], q.value.shape)
        return _Heads(out, q.heads, transposed=True)

    def _check_last(self, x: Any, shape: Any) -> None:
        if not isinstance(x, _Value) or list(shape) != [x.shape[-1]]:
            self._fail("normalisation over anything but the feature axis is not supported")

    def _map(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return self.env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self._map(v) for v in a)
        return a

    # --- graph ---------------------------------------------------------------------------------
    def _build(self, name: str, output: str) -> Graph:
        per_module: dict[str, int] = {}
        for _, _, owner, _ in self.entries.values():
            if owner and owner[0]:
                per_module[owner[0]] = per_module.get(owner[0], 0) + 1
        final: dict[str, str] = {}
        used: set[str] = set()
        for tmp, (node, _, owner, fx_name) in self.entries.items():
            base = fx_name if not owner or not owner[0] else (owner[0] if per_module[owner[0]] == 1 else f"{owner[0]}.{fx_name}")
            n, i = base, 1
            while n in used:
                n, i = f"{base}_{i}", i + 1
            used.add(n)
            final[tmp] = n
        graph = Graph(name)
        for tmp, (node, inputs, _, _) in self.entries.items():
            if isinstance(node, Tokens):
                node.vocab = int(self.vocab or 1)
            graph.add(final[tmp], node, [final[i] for i in inputs])
        graph.outputs = [final[output]]
        graph.meta["source"] = {"format": "torch", "torch_version": torch.__version__, "model": "language model"}
        graph.validate()
        return graph

"""The node kinds of token-sequence models (decoder language models).

A sample is a sequence of L tokens; every value is (L, features) with the token axis first, and
no node mixes tokens except the attention kinds, which are causal (token t reads tokens <= t).

Two kinds of work are kept apart, as a neuromorphic chip keeps them apart:

* ``Projection`` - a static-weight matrix product applied to every token: synapses. Fed through
  a ``SpikeCode`` node its input arrives as spike events and it performs one accumulation per
  event and output (snc.ir.spike_coding).
* dense compute (role ``compute``) - everything whose operands are all activations or that is
  not linear: the embedding lookup, norms, activation functions, activation x activation
  products, causal softmax attention and gated linear attention with its recurrent state. Each
  states its operations per token (``ops_per_token``) so that reports count them (as MACs)
  instead of hiding them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.errors import InvalidData, InvalidGraph, ShapeError

from . import spike_coding as sc
from .node import CODER, COMPUTE, INPUT, LINEAR, Node, Shape

ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu", "sigmoid", "tanh")
NORMS = ("rms", "layer")


def _tokens(name: str, kind: str, shape: Shape) -> tuple[int, int]:
    if len(shape) != 2:
        raise ShapeError(f"{kind} expects (tokens, features), got {tuple(shape)}", node=name)
    return int(shape[0]), int(shape[1])


@dataclass(eq=False)
class Tokens(Node):
    """The input of a language model: L token ids per sample, each in [0, vocab)."""

    kind = "Tokens"
    role = INPUT
    arity = (0, 0)

    length: int = 1
    vocab: int = 1

    @property
    def shape(self) -> Shape:
        return (int(self.length),)

    def infer_shape(self, name, inputs):
        return (int(self.length),)

    def check(self, name: str) -> None:
        super().check(name)
        if self.length < 1 or self.vocab < 1:
            raise InvalidGraph(f"token input needs length and vocab >= 1, got {self.length}, {self.vocab}", node=name)

    def conform(self, data: np.ndarray, name: str = "tokens", timesteps: int | None = None) -> np.ndarray:
        """Token ids (N, L) of an integer dtype, each in [0, vocab), as int64; InvalidData otherwise."""
        data = np.asarray(data)
        if data.dtype.kind not in "iu":
            raise InvalidData(f"token ids must be integers, got dtype {data.dtype}", node=name)
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2 or data.shape[1] != self.length:
            raise InvalidData(f"token data must be (N, {self.length}), got {tuple(data.shape)}", node=name)
        if data.size and (data.min() < 0 or data.max() >= self.vocab):
            raise InvalidData(f"token ids must lie in [0, {self.vocab}), found {int(data.min())}..{int(data.max())}", node=name)
        return data.astype(np.int64)


@dataclass(eq=False)
class Embedding(Node):
    """y[t] = weight[token[t]]: a table lookup (no arithmetic; a memory read per token)."""

    kind = "Embedding"
    role = COMPUTE

    weight: np.ndarray = None  # (vocab, d)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, np.float32)

    def infer_shape(self, name, inputs):
        (shape,) = inputs
        if len(shape) != 1:
            raise ShapeError(f"Embedding expects token ids (L,), got {tuple(shape)}", node=name)
        return (int(shape[0]), int(self.weight.shape[1]))

    def check(self, name: str) -> None:
        super().check(name)
        if self.weight.ndim != 2:
            raise InvalidGraph(f"Embedding weight must be (vocab, d), got {self.weight.shape}", node=name)

    def ops_per_token(self, shapes: list[Shape]) -> int:
        return 0


@dataclass(eq=False)
class Projection(Node):
    """y[t] = W x[t] + b for every token: a static-weight synaptic projection. W is (n_out, n_in)."""

    kind = "Projection"
    role = LINEAR

    weight: np.ndarray = None
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, np.float32)
        if self.bias is not None:
            self.bias = np.asarray(self.bias, np.float32)

    def infer_shape(self, name, inputs):
        (shape,) = inputs
        n_tok, n_in = _tokens(name, self.kind, shape)
        if n_in != self.weight.shape[1]:
            raise ShapeError(f"Projection expects {self.weight.shape[1]} input features, got {n_in}", node=name)
        return (n_tok, int(self.weight.shape[0]))

    def check(self, name: str) -> None:
        super().check(name)
        if self.weight.ndim != 2:
            raise InvalidGraph(f"Projection weight must be 2-D, got shape {self.weight.shape}", node=name)
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise InvalidGraph(f"Projection bias shape {self.bias.shape} does not match {self.weight.shape[0]} outputs", node=name)


@dataclass(eq=False)
class Norm(Node):
    """RMSNorm y = x / sqrt(mean(x^2) + eps) * weight, or LayerNorm
    y = (x - mean x) / sqrt(var x + eps) * weight + bias, over the features of each token."""

    kind = "Norm"
    role = COMPUTE

    mode: str = "rms"
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for f in ("weight", "bias"):
            if getattr(self, f) is not None:
                setattr(self, f, np.asarray(getattr(self, f), np.float32))

    def infer_shape(self, name, inputs):
        (shape,) = inputs
        _, d = _tokens(name, self.kind, shape)
        for f in ("weight", "bias"):
            v = getattr(self, f)
            if v is not None and v.shape != (d,):
                raise ShapeError(f"Norm {f} has shape {v.shape}, features are {d}", node=name)
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        if self.mode not in NORMS:
            raise InvalidGraph(f"unknown norm {self.mode!r} (use one of {NORMS})", node=name)
        if not self.eps >= 0:
            raise InvalidGraph(f"norm eps must be >= 0, got {self.eps}", node=name)

    def ops_per_token(self, shapes: list[Shape]) -> int:
        d = int(shapes[0][1])
        # rms: square-accumulate, scale, weight (3d); layer: mean, centre, square-accumulate, scale, weight (5d)
        return (3 if self.mode == "rms" else 5) * d


@dataclass(eq=False)
class Activation(Node):
    """y = f(x) elementwise, f one of ACTIVATIONS (gelu: exact erf form; gelu_tanh: tanh approximation)."""

    kind = "Activation"
    role = COMPUTE

    fn: str = "silu"

    def infer_shape(self, name, inputs):
        (shape,) = inputs
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        if self.fn not in ACTIVATIONS:
            raise InvalidGraph(f"unknown activation {self.fn!r} (use one of {ACTIVATIONS})", node=name)

    def ops_per_token(self, shapes: list[Shape]) -> int:
        return int(np.prod(shapes[0][1:]))


@dataclass(eq=False)
class _Elementwise(Node):
    """Two activations of one shape combined element by element (one operation per element)."""

    role = COMPUTE
    arity = (2, 2)

    def infer_shape(self, name, inputs):
        a, b = inputs
        if tuple(a) != tuple(b):
            raise ShapeError(f"{self.kind} of shapes {tuple(a)} and {tuple(b)}", node=name)
        return tuple(a)

    def ops_per_token(self, shapes: list[Shape]) -> int:
        return int(np.prod(shapes[0][1:]))


@dataclass(eq=False)
class Product(_Elementwise):
    """y = a * b elementwise: a product of two activations (a gated MLP's gate x up)."""

    kind = "Product"


@dataclass(eq=False)
class Residual(_Elementwise):
    """y = a + b elementwise: a residual connection."""

    kind = "Residual"


def _heads(name: str, kind: str, d: int, heads: int) -> int:
    if heads < 1 or d % heads:
        raise ShapeError(f"{kind}: {d} features do not split into {heads} heads", node=name)
    return d // heads


@dataclass(eq=False)
class Attention(Node):
    """Causal softmax attention over ``heads`` heads of q, k, v (inputs in that order, each
    (L, d)): per head, o_t = sum_{s in W(t)} softmax_s(q_t . k_s / sqrt(d_h)) v_s with
    W(t) = {s : t - window < s <= t} (window 0: all s <= t)."""

    kind = "Attention"
    role = COMPUTE
    arity = (3, 3)

    heads: int = 1
    window: int = 0

    def infer_shape(self, name, inputs):
        q, k, v = (tuple(s) for s in inputs)
        if not q == k == v:
            raise ShapeError(f"Attention needs q, k, v of one shape, got {q}, {k}, {v}", node=name)
        _, d = _tokens(name, self.kind, q)
        _heads(name, self.kind, d, self.heads)
        return q

    def check(self, name: str) -> None:
        super().check(name)
        if self.window < 0:
            raise InvalidGraph(f"attention window must be >= 0, got {self.window}", node=name)

    def context(self, position: np.ndarray) -> np.ndarray:
        """Keys token ``position`` (0-based) attends to."""
        ctx = np.asarray(position) + 1
        return np.minimum(ctx, self.window) if self.window else ctx

    def ops_per_token(self, shapes: list[Shape]) -> int:
        """Mean over the sequence's positions: q.k and p.v products (2 d per key) and the
        softmax's exponent, sum and scale (3 per key and head)."""
        n, d = (int(v) for v in shapes[0])
        ctx = float(self.context(np.arange(n)).mean())
        return int(round(ctx * (2 * d + 3 * self.heads)))


@dataclass(eq=False)
class LinearAttention(Node):
    """Gated linear attention (the recurrent form SpikingBrain's linear layers use): inputs q, k,
    v (L, d) and gate logits a (L, heads). Per head with g_t = sigmoid(a_t) in (0, 1), a state
    S (d_h x d_h) evolves as S_t = g_t S_{t-1} + k_t^T v_t, and o_t = q_t S_t / d_h."""

    kind = "LinearAttention"
    role = COMPUTE
    arity = (4, 4)

    heads: int = 1

    def infer_shape(self, name, inputs):
        q, k, v, a = (tuple(s) for s in inputs)
        if not q == k == v:
            raise ShapeError(f"LinearAttention needs q, k, v of one shape, got {q}, {k}, {v}", node=name)
        n, d = _tokens(name, self.kind, q)
        _heads(name, self.kind, d, self.heads)
        if a != (n, self.heads):
            raise ShapeError(f"LinearAttention gate logits must be ({n}, {self.heads}), got {a}", node=name)
        return q

    def state_size(self, d: int) -> int:
        """Values of the recurrent state (all heads)."""
        dh = d // self.heads
        return self.heads * dh * dh

    def ops_per_token(self, shapes: list[Shape]) -> int:
        """Gate (sigmoid, 1 per head), decay g S and outer product k^T v (2 per state value),
        read-out q S (1 per state value) and the 1/d_h scale (d)."""
        d = int(shapes[0][1])
        return 3 * self.state_size(d) + self.heads + d


@dataclass(eq=False)
class SpikeCode(Node):
    """Spike coding of the activations entering projections (snc.ir.spike_coding): per token
    V_th = clamp(mean(|x|) / k, lo, hi), c = round(x / V_th) clipped to [-max_count, max_count],
    expanded into ``steps`` steps of events of ``coding``. Its value is what the events
    reconstruct, y = V_th c; the projections it feeds see events, not values.

    steps: the time base (from calibration data); counts that need more steps are clipped to
    what ``steps`` steps can carry, and the clipped share is reported. None: every batch takes
    the steps its counts need.
    payload_bits: a graded event's payload width (Loihi 2: 8 to 24 bits, signed here); larger
    counts are clipped to +-(2**(bits-1) - 1)."""

    kind = "SpikeCode"
    role = CODER

    coding: str = "ternary"
    k: float = 3.0
    steps: int | None = None
    max_count: int | None = None
    lo: float = 1e-5
    hi: float = 1e4
    payload_bits: int = 24

    def infer_shape(self, name, inputs):
        (shape,) = inputs
        _tokens(name, self.kind, shape)
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        if self.coding not in sc.CODINGS:
            raise InvalidGraph(f"unknown coding {self.coding!r} (use one of {sc.CODINGS})", node=name)
        if not self.k > 0:
            raise InvalidGraph(f"k must be > 0, got {self.k}", node=name)
        least = 2 if self.coding == "bitwise" else 1  # two's complement needs a sign bit and a value bit
        if self.steps is not None and self.steps < least:
            raise InvalidGraph(f"{self.coding} coding needs steps >= {least}, got {self.steps}", node=name)
        if self.max_count is not None and self.max_count < 1:
            raise InvalidGraph(f"max_count must be >= 1, got {self.max_count}", node=name)
        lo_bits, hi_bits = sc.PAYLOAD_BITS
        if not lo_bits <= self.payload_bits <= hi_bits:
            raise InvalidGraph(f"graded payloads take {lo_bits} to {hi_bits} bits, got {self.payload_bits}", node=name)

    def ops_per_token(self, shapes: list[Shape]) -> int:
        """The threshold (|x| accumulated, d) and the counts (a divide and a round per value, d)."""
        return 2 * int(shapes[0][1])

    def limit(self) -> int | None:
        """The largest |count| this node's time base carries (None: unlimited)."""
        steps = self.steps if self.steps else (1 if self.coding == "graded" else None)
        limits = [m for m in (self.max_count, sc.max_count_for(self.coding, steps, self.payload_bits) if steps else None)
                  if m is not None]
        return min(limits) if limits else None

    def code(self, x: np.ndarray, name: str = "spike-code") -> tuple[np.ndarray, np.ndarray, float]:
        """Activations (..., d) -> (counts int64, V_th (..., 1), clipped share)."""
        vth = sc.adaptive_threshold(x, self.k, self.lo, self.hi)
        c, clipped = sc.counts(x, vth, self.limit())
        if self.coding == "binary" and c.size and c.min() < 0:
            raise InvalidData("binary coding needs non-negative activations (use ternary, bitwise or graded)", node=name)
        return c, vth, clipped


SEQUENCE_KINDS = (Tokens, Embedding, Projection, Norm, Activation, Product, Residual, Attention, LinearAttention, SpikeCode)


def is_sequence_model(graph) -> bool:
    """Whether a graph reads tokens (a language model)."""
    return any(isinstance(graph.nodes[n], Tokens) for n in graph.input_names)
